"""The agent contract: every body the API and its agents exchange under /filemem/v1, defined
once as pydantic models that both sides import (answers.py: API -> agent; reports.py: agent ->
API), and its version.

Versioning. CONTRACT_VERSION changes only when one side could misread the other: a field
removed, renamed or retyped, or a new required field. Additive optional fields do not change it:
- answers (API -> agent) ignore fields they do not know: an older agent reads a newer API's
  answer as if the new fields were absent;
- reports (agent -> API) refuse fields they do not know (422 naming the field, as for every
  body: a misspelt field never passes silently). So an API is upgraded before its agents, as
  in OpenStack; an agent sends a new optional field only to an API that takes it.
The agent sends its version in the CONTRACT_HEADER of every request; the API refuses another
version with 406 (nova's answer to a microversion it does not speak), naming both versions.
The API's registration and watch answers carry `contract_version`; the agent refuses to run
against another one (ContractMismatch: it stops, as when its registration is refused).
Without the header or the field, the other side is from before versioning: version 1.
"""

from __future__ import annotations

CONTRACT_VERSION = 1
CONTRACT_HEADER = "X-Filemem-Contract"
# What an agent or an API from before versioning speaks (no header, no field).
UNVERSIONED = 1


def header_version(value: str | None) -> int | None:
    """The version a CONTRACT_HEADER value names (absent: UNVERSIONED); None when it names
    none (not a decimal integer)."""
    if value is None:
        return UNVERSIONED
    text = value.strip()
    if not text.isdecimal() or len(text) > 9:
        return None
    return int(text)


def mismatch(theirs: int | None, side: str) -> str | None:
    """Why this side cannot talk to `side` speaking `theirs`, or None when it can."""
    if theirs == CONTRACT_VERSION:
        return None
    named = "an unreadable version" if theirs is None else f"version {theirs}"
    return (
        f"the {side} speaks agent contract {named} ({CONTRACT_HEADER}), this side speaks "
        f"version {CONTRACT_VERSION}: upgrade the API first, then its agents"
    )
