"""Whose resource provider a host may register, and how much capacity the API believes it has."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from filemem.common.resources import MEMORY_MB
from filemem.placement.client import PlacementClient

CLONE_HINT = (
    "a host registers only its own provider. If {host} was cloned from {owner}, it kept "
    "{owner}'s compute_node_uuid file (under its state_path): remove that file on {host} and "
    "restart its agent, which then creates a provider of its own"
)


@dataclass(frozen=True)
class PlacementMemory:
    """MEMORY_MB of a provider as Placement holds it: the capacity claims are made against."""

    total: int
    reserved: int
    allocation_ratio: float
    used: int

    @property
    def free(self) -> int:
        return max(0, int((self.total - self.reserved) * self.allocation_ratio) - self.used)


def provider_refusal(
    host: str,
    provider_uuid: str,
    owner: str | None,
    placement_name: str | None,
    registered_hosts: frozenset[str] = frozenset(),
) -> str | None:
    """Why `host` may not register `provider_uuid`, or None.

    `owner` is the host whose service row holds the provider (the database's answer, unique);
    `placement_name` the provider's name in Placement (agents name their provider after their
    host), which names the owner even when the owner's row is not there: a provider named
    after another registered host is that host's.
    """
    if owner is not None and owner != host:
        hint = CLONE_HINT.format(host=host, owner=owner)
        return f"Resource provider {provider_uuid} belongs to host {owner}: {hint}."
    if placement_name is not None and placement_name != host and placement_name in registered_hosts:
        hint = CLONE_HINT.format(host=host, owner=placement_name)
        return (
            f"Resource provider {provider_uuid} belongs to host {placement_name} "
            f"(its name in Placement): {hint}."
        )
    return None


def trusted_capacity(
    file_backed_memory_mb: int, store_free_mb: int | None, memory: PlacementMemory | None
) -> tuple[int, int | None]:
    """(file_backed_memory_mb, store_free_mb) no larger than Placement holds for the provider.

    The scheduler claims against Placement's inventory only; these two reported numbers feed
    the live-migration checks and the hypervisor view, so a registration must not claim more
    than the inventory the host's agent keeps in Placement. Before the agent's first sync
    (no MEMORY_MB inventory yet) no free room is believed at all; the size of file-backed
    memory is kept, as it also says that the host is file-backed.
    """
    if memory is None:
        return file_backed_memory_mb, None
    fbm = min(file_backed_memory_mb, memory.total)
    free = None if store_free_mb is None else min(store_free_mb, memory.free)
    return fbm, free


@dataclass(frozen=True)
class ProviderFacts:
    """What Placement holds for a provider: its name (None: unknown) and MEMORY_MB."""

    name: str | None
    memory: PlacementMemory | None


def provider_facts(placement: PlacementClient, provider_uuid: str) -> ProviderFacts:
    """The provider's name, MEMORY_MB inventory and usage (3 GETs; 1 when it is unknown)."""
    provider = placement.get_resource_provider(provider_uuid)
    if provider is None:
        return ProviderFacts(None, None)
    _generation, inventories = placement.get_inventories(provider_uuid)
    inventory: dict[str, Any] | None = inventories.get(MEMORY_MB)
    if not inventory:
        return ProviderFacts(provider.name, None)
    memory = PlacementMemory(
        total=int(inventory.get("total", 0)),
        reserved=int(inventory.get("reserved", 0)),
        allocation_ratio=float(inventory.get("allocation_ratio", 1.0)),
        used=int(placement.get_usages(provider_uuid).get(MEMORY_MB, 0)),
    )
    return ProviderFacts(provider.name, memory)
