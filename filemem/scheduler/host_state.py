"""What the scheduler knows of one host: its Placement inventory, usage and traits."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Placement's default max_unit: "no limit" for inventories that set none.
UNLIMITED = 2147483647


@dataclass(frozen=True)
class HostRecord:
    """A compute service as the API's services table knows it.

    `disabled`: an operator disabled it; `down`: its agent has not reported for too long.
    Both keep new guests away; include such services anyway so refusals can name them.
    """

    host: str
    provider_uuid: str
    disabled: bool = False
    down: bool = False


@dataclass(frozen=True, slots=True)
class Inventory:
    """One resource class of a provider, with Placement's capacity rule.

    `detailed` is False when only the capacity is known (Placement's provider summaries give
    capacity and usage but not the inventory fields): such a record carries the capacity as
    `total` and Placement's defaults elsewhere, so the capacity math stays the same.
    """

    total: int
    reserved: int = 0
    allocation_ratio: float = 1.0
    min_unit: int = 1
    max_unit: int = UNLIMITED
    step_size: int = 1
    detailed: bool = True
    capacity: int = field(init=False)

    def __post_init__(self) -> None:
        # Placement refuses a claim when used + amount > (total - reserved) * ratio with float
        # arithmetic; with integer amounts that is exactly a comparison with the floor.
        capacity = int((self.total - self.reserved) * self.allocation_ratio)
        object.__setattr__(self, "capacity", max(capacity, 0))

    @classmethod
    def from_placement(cls, record: Mapping[str, Any]) -> Inventory:
        """From GET /resource_providers/{uuid}/inventories, Placement's defaults filled in."""
        return cls(
            total=int(record["total"]),
            reserved=int(record.get("reserved", 0)),
            allocation_ratio=float(record.get("allocation_ratio", 1.0)),
            min_unit=int(record.get("min_unit", 1)),
            max_unit=int(record.get("max_unit", UNLIMITED)),
            step_size=int(record.get("step_size", 1)) or 1,
        )

    @classmethod
    def from_capacity(cls, capacity: int) -> Inventory:
        """From an allocation-candidates provider summary, which has only the capacity."""
        return cls(total=int(capacity), detailed=False)


class HostState:
    """Mutable per-host state; the cache guards it with its lock.

    `reported` is False for a host Placement's bulk answer left out (it had no free memory,
    no inventory at all, or was registered since): nothing can be claimed there until a
    refresh says otherwise. `missing` means Placement has no such provider.
    """

    __slots__ = (
        "disabled",
        "down",
        "host",
        "inventories",
        "missing",
        "provider_uuid",
        "reported",
        "sort_key",
        "traits",
        "usage",
    )

    def __init__(
        self,
        record: HostRecord,
        *,
        traits: frozenset[str] = frozenset(),
        inventories: Mapping[str, Inventory] | None = None,
        usage: Mapping[str, int] | None = None,
        reported: bool = True,
        missing: bool = False,
    ) -> None:
        self.host = record.host
        self.provider_uuid = record.provider_uuid
        self.disabled = record.disabled
        self.down = record.down
        self.traits = traits
        self.inventories: dict[str, Inventory] = dict(inventories or {})
        self.usage: dict[str, int] = dict(usage or {})
        self.reported = reported
        self.missing = missing
        # Ascending key of the cache's order: (negated weight, tie-breaking ticket).
        self.sort_key: tuple[float, int] = (0.0, 0)

    def __repr__(self) -> str:
        return f"HostState({self.host!r}, {self.provider_uuid}, free_mb={self.free('MEMORY_MB')})"

    @property
    def detailed(self) -> bool:
        """Read in full from the provider (not only from a bulk summary)."""
        return self.reported and any(inv.detailed for inv in self.inventories.values())

    def record(self) -> HostRecord:
        return HostRecord(self.host, self.provider_uuid, self.disabled, self.down)

    def free(self, resource_class: str) -> int:
        """Capacity minus usage; 0 without an inventory of that class."""
        inventory = self.inventories.get(resource_class)
        if inventory is None:
            return 0
        return inventory.capacity - self.usage.get(resource_class, 0)

    def consume(self, resources: Mapping[str, int]) -> None:
        for rc, amount in resources.items():
            self.usage[rc] = self.usage.get(rc, 0) + amount

    def release(self, resources: Mapping[str, int]) -> None:
        for rc, amount in resources.items():
            self.usage[rc] = max(self.usage.get(rc, 0) - amount, 0)

    def set_record(self, record: HostRecord) -> None:
        self.host = record.host
        self.disabled = record.disabled
        self.down = record.down


def state_from_summary(record: HostRecord, summary: Mapping[str, Any]) -> HostState:
    """A host from one provider summary of GET /allocation_candidates (microversion >= 1.27)."""
    inventories: dict[str, Inventory] = {}
    usage: dict[str, int] = {}
    for rc, numbers in (summary.get("resources") or {}).items():
        inventories[rc] = Inventory.from_capacity(int(numbers["capacity"]))
        usage[rc] = int(numbers.get("used", 0))
    return HostState(
        record, traits=frozenset(summary.get("traits") or ()), inventories=inventories, usage=usage
    )


def state_from_provider(
    record: HostRecord,
    inventories: Mapping[str, Mapping[str, Any]],
    usage: Mapping[str, int],
    traits: frozenset[str],
) -> HostState:
    """A host from its own inventories, usages and traits (full detail)."""
    return HostState(
        record,
        traits=traits,
        inventories={rc: Inventory.from_placement(inv) for rc, inv in inventories.items()},
        usage={rc: int(n) for rc, n in usage.items()},
    )


def unreported_state(record: HostRecord, *, missing: bool = False) -> HostState:
    return HostState(record, reported=False, missing=missing)
