"""What this host reports to Placement: pure inventory and trait policy over config and facts.

MEMORY_MB
    total = [libvirt] file_backed_memory when > 0 (as the seed says: the configured figure,
    not host RAM), else host RAM (capped by [libvirt] guest_memory_limit_mb when set, the
    RAM guests may take). allocation_ratio 1.0 on a file-backed host (the store
    cannot be over-committed); otherwise ram_allocation_ratio, 1.0 when unset.
    min_unit = step_size = 1, max_unit = total.

Capacity truth (file-backed hosts)
    The store can hold ``effective_capacity_mb`` MiB of guest memory (its size, or free
    room plus what our guests' files already hold, less the headroom). Guests are handed
    ``total - reserved``, so when that exceeds what the store holds, reserved is raised by
    the difference:

        reserved = min(total, max(reserved_host_memory_mb, total - store_mb))

    i.e. reserved_host_memory_mb plus the shortfall against what guests were promised.
    total stays what the operator configured, so the figure in Placement still reads as
    the configuration, and a store that recovers simply brings reserved back down.
    Measured against real Placement (openstack-placement 16, microversion >= 1.26):
    reserved == total is accepted and means "host full"; reserved > total is refused (400),
    hence the cap; total < 1 is refused by its schema, hence a class that would be empty is
    left out; an inventory below current usage is accepted (Placement logs "over-capacity"
    and refuses new claims), so running guests keep their allocations when the store shrinks.

VCPU
    total = CPUs, allocation_ratio = cpu_allocation_ratio, max_unit = total.

DISK_GB
    Instance disks live under [DEFAULT] state_path: total = that filesystem's size in whole
    GiB, reserved = reserved_host_disk_mb rounded up to GiB (as nova does), capped at total.

Traits
    filemem owns exactly OWNED_TRAITS. It adds COMPUTE_MEM_BACKING_FILE on a file-backed
    host and removes it otherwise; every other trait on the provider (set by an operator
    or another service, e.g. CUSTOM_* for aggregates) is left alone, as nova does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from filemem.backing.capacity import effective_capacity_mb
from filemem.common.resources import DISK_GB, GIB, MEMORY_BACKING_FILE_TRAIT, MEMORY_MB, MIB, VCPU

OWNED_TRAITS: frozenset[str] = frozenset({MEMORY_BACKING_FILE_TRAIT})

Inventories = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class InventoryConfig:
    """The configuration values the inventory depends on (nova's names)."""

    file_backed_memory_mb: int
    reserved_host_memory_mb: int = 0
    ram_allocation_ratio: float | None = None
    cpu_allocation_ratio: float = 4.0
    reserved_host_disk_mb: int = 0
    backing_store_headroom_mb: int = 0
    guest_memory_limit_mb: int = 0  # [libvirt] guest_memory_limit_mb: RAM guests may take

    @property
    def file_backed(self) -> bool:
        return self.file_backed_memory_mb > 0


@dataclass(frozen=True)
class HostResources:
    """Host facts: RAM in MiB, CPU count, size in bytes of the instance-disk filesystem."""

    memory_mb: int
    vcpus: int
    disk_bytes: int


@dataclass(frozen=True)
class StoreUsage:
    """The backing store's room, in bytes; allocated = what our guests' memory files hold."""

    size_bytes: int
    free_bytes: int
    allocated_by_guests_bytes: int
    ram_limit_bytes: int | None = None  # a tmpfs/ramfs store holds no more than RAM (+ swap)


@dataclass(frozen=True)
class HostInventory:
    """The wanted inventories and owned traits, and why memory was held back, if it was."""

    inventories: Inventories
    traits: frozenset[str]
    store_capacity_mb: int | None = None  # what the store can hold; None when not file-backed
    memory_shortfall_mb: int = 0  # how far reserved was raised beyond reserved_host_memory_mb
    capacity_reason: str | None = None  # set exactly when memory_shortfall_mb > 0

    @property
    def capacity_reduced(self) -> bool:
        return self.memory_shortfall_mb > 0


def _record(total: int, reserved: int, allocation_ratio: float) -> dict[str, Any]:
    return {
        "total": total,
        "reserved": min(max(0, reserved), total),
        "min_unit": 1,
        "max_unit": total,
        "step_size": 1,
        "allocation_ratio": float(allocation_ratio),
    }


def _memory(
    config: InventoryConfig, host: HostResources, store: StoreUsage | None
) -> tuple[dict[str, Any] | None, int | None, int, str | None]:
    """(MEMORY_MB record or None, store capacity, shortfall, reason)."""
    if not config.file_backed:
        ratio = 1.0 if config.ram_allocation_ratio is None else config.ram_allocation_ratio
        # RAM-backed guests can use no more RAM than the partition's limit lets them.
        ram_mb = (
            min(host.memory_mb, config.guest_memory_limit_mb)
            if config.guest_memory_limit_mb
            else host.memory_mb
        )
        if ram_mb < 1:
            return None, None, 0, None
        return _record(ram_mb, config.reserved_host_memory_mb, ratio), None, 0, None
    total = config.file_backed_memory_mb
    base_reserved = min(config.reserved_host_memory_mb, total)
    if store is None:
        raise ValueError("a file-backed host needs the backing store's facts")
    store_mb, why = effective_capacity_mb(
        total,
        store.size_bytes,
        store.free_bytes,
        store.allocated_by_guests_bytes,
        config.backing_store_headroom_mb * MIB,
        ram_limit_bytes=store.ram_limit_bytes,
    )
    reserved = min(total, max(base_reserved, total - store_mb))
    shortfall = reserved - base_reserved
    reason = None
    if shortfall > 0:
        full = " (host full)" if reserved == total else ""
        reason = (
            f"{why}; MEMORY_MB reserved raised from {base_reserved} to {reserved} MiB"
            f"{full}, leaving {total - reserved} MiB for guests"
        )
    return _record(total, reserved, 1.0), store_mb, shortfall, reason


def compute_inventory(
    config: InventoryConfig, host: HostResources, store: StoreUsage | None
) -> HostInventory:
    """The inventory and owned traits Placement should show for this host.

    `store` is required on a file-backed host and ignored otherwise.
    """
    memory, store_mb, shortfall, reason = _memory(config, host, store)
    inventories: Inventories = {}
    if memory is not None:
        inventories[MEMORY_MB] = memory
    if host.vcpus >= 1:
        inventories[VCPU] = _record(host.vcpus, 0, config.cpu_allocation_ratio)
    disk_gb = host.disk_bytes // GIB
    if disk_gb >= 1:
        reserved_gb = -(-config.reserved_host_disk_mb // 1024)
        inventories[DISK_GB] = _record(disk_gb, reserved_gb, 1.0)
    traits = frozenset({MEMORY_BACKING_FILE_TRAIT}) if config.file_backed else frozenset()
    return HostInventory(inventories, traits, store_mb, shortfall, reason)


def merge_traits(current: Iterable[str], ours: Iterable[str]) -> set[str]:
    """The provider's traits with the owned ones made exactly `ours`, foreign ones kept."""
    wanted = set(ours)
    unknown = wanted - OWNED_TRAITS
    if unknown:
        raise ValueError(f"traits {sorted(unknown)} are not owned by filemem")
    return (set(current) - OWNED_TRAITS) | wanted
