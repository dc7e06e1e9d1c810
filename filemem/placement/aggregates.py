"""Placement aggregates of resource providers (1.19+: generation-guarded) and which
providers are members of aggregates.

PlacementClient methods in all but name: they take the client, so the client module stays
one concern (providers, inventories, traits, allocations) and under its size limit.
"""

from __future__ import annotations

import random
import time
import urllib.parse
from collections.abc import Callable, Collection, Iterable
from typing import TypeVar

from filemem.placement.client import (
    CONCURRENT_UPDATE,
    GenerationConflict,
    PlacementClient,
    PlacementConflict,
)

T = TypeVar("T")


def _retrying(client: PlacementClient, path: str, attempt: Callable[[], T]) -> T:
    """Run `attempt` (which re-reads the generation) until no generation race, bounded."""
    for tries in range(client.max_retries + 1):
        try:
            return attempt()
        except PlacementConflict as exc:
            if exc.code != CONCURRENT_UPDATE:
                raise
            if tries >= client.max_retries:
                raise GenerationConflict("PUT", path, 409, exc.detail, exc.code) from exc
            time.sleep(min(1.0, 0.02 * 2**tries) * (0.5 + random.random() / 2))  # noqa: S311
    raise AssertionError("unreachable")


def get_provider_aggregates(client: PlacementClient, rp_uuid: str) -> tuple[int, set[str]]:
    """(provider generation, the provider's aggregate uuids); 404 raises PlacementApiError."""
    body = client.request("GET", f"/resource_providers/{rp_uuid}/aggregates").body or {}
    return body["resource_provider_generation"], set(body.get("aggregates") or [])


def update_provider_aggregates(
    client: PlacementClient,
    rp_uuid: str,
    add: Collection[str] = (),
    remove: Collection[str] = (),
) -> bool:
    """Make the provider a member of `add` and of none of `remove`, keeping its other
    aggregates (an operator's or another service's); True when a write was needed."""
    path = f"/resource_providers/{rp_uuid}/aggregates"

    def attempt() -> bool:
        generation, current = get_provider_aggregates(client, rp_uuid)
        wanted = (current | set(add)) - set(remove)
        if wanted == current:
            return False
        body = {"aggregates": sorted(wanted), "resource_provider_generation": generation}
        client.request("PUT", path, body)
        return True

    return _retrying(client, path, attempt)


def providers_member_of(client: PlacementClient, member_of: Iterable[str]) -> set[str]:
    """The uuids of providers matching every member_of value ("in:a,b": any of, 1.3;
    "!in:c,d": none of, 1.32)."""
    query = urllib.parse.urlencode([("member_of", value) for value in member_of], safe=":,!")
    body = client.request("GET", f"/resource_providers?{query}").body or {}
    return {provider["uuid"] for provider in body.get("resource_providers") or []}
