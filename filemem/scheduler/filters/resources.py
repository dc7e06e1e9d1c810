"""ResourcesFilter: the host has room for every requested resource, by Placement's rules."""

from __future__ import annotations

from filemem.common.resources import MEMORY_MB
from filemem.scheduler.filters.base import BaseFilter, Rejection
from filemem.scheduler.host_state import HostState
from filemem.scheduler.request import PlacementRequest


def _constraint(rc: str, amount: int, host: HostState) -> Rejection | None:
    inventory = host.inventories[rc]
    if amount > inventory.max_unit:
        words = f"{rc} {amount} in one allocation (max_unit {inventory.max_unit})"
        return Rejection(f"cannot take {words}", f"cannot take {words}")
    if amount < inventory.min_unit:
        words = f"{rc} {amount} (min_unit {inventory.min_unit})"
        return Rejection(f"refuses {words}", f"refuse {words}")
    if amount % inventory.step_size:
        words = f"{rc} {amount} (step_size {inventory.step_size})"
        return Rejection(f"refuses {words}", f"refuse {words}")
    return None


class ResourcesFilter(BaseFilter):
    """Capacity ((total - reserved) * allocation_ratio) minus usage, min/max_unit, step_size."""

    def check(self, host: HostState, request: PlacementRequest) -> Rejection | None:
        if host.missing:
            return Rejection(
                "has no resource provider in Placement", "have no resource provider in Placement"
            )
        if not host.reported:
            # Placement's bulk answer lists only providers with free memory.
            return Rejection(
                f"had no free {MEMORY_MB} at the last refresh",
                f"had no free {MEMORY_MB} at the last refresh",
            )
        inventories, usage = host.inventories, host.usage
        for rc, amount in request.resources.items():
            inventory = inventories.get(rc)
            if inventory is None:
                return Rejection(f"has no {rc} inventory", f"have no {rc} inventory")
            free = inventory.capacity - usage.get(rc, 0)
            if free < amount:
                return Rejection(f"lacks {rc} {amount}", f"lack {rc} {amount}", free=free)
            if inventory.detailed:
                refused = _constraint(rc, amount, host)
                if refused is not None:
                    return refused
        return None
