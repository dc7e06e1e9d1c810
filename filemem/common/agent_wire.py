"""The agent API's marker for "gone": a 404 that no routing 404 can be mistaken for."""

from __future__ import annotations

from collections.abc import Mapping

# A 404 from /filemem/v1 for an instance or migration that no longer exists carries this
# header (value: "instance" or "migration"). A 404 without it is a route the API does not
# serve (another version, a wrong prefix, a proxy): the agent must not take it for "gone",
# or it records a step as done that no API has seen.
GONE_HEADER = "X-Filemem-Gone"
INSTANCE = "instance"
MIGRATION = "migration"
GONE_KINDS = frozenset({INSTANCE, MIGRATION})


def is_gone(status: int, headers: Mapping[str, str]) -> bool:
    """The answer says the instance or migration is gone (404 with the marker)."""
    return status == 404 and headers.get(GONE_HEADER, "").strip().lower() in GONE_KINDS
