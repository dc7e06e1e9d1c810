"""RamAllocationRatioFilter: a file-backed host must not promise more memory than its store."""

from __future__ import annotations

from filemem.common.resources import MEMORY_BACKING_FILE_TRAIT, MEMORY_MB
from filemem.scheduler.filters.base import BaseFilter, Rejection
from filemem.scheduler.host_state import HostState
from filemem.scheduler.request import PlacementRequest


class RamAllocationRatioFilter(BaseFilter):
    """Refuses file-backed hosts whose MEMORY_MB inventory has allocation_ratio other than 1.0.

    The compute agent refuses to start so configured, but an inventory written by hand (or by
    an old agent) could still overcommit a backing store that cannot hold it. Only inventories
    read in full carry the ratio; a summary-only record (capacity alone) says nothing against
    the host, and Placement re-checks capacity on the claim anyway.
    """

    def check(self, host: HostState, request: PlacementRequest) -> Rejection | None:
        if MEMORY_BACKING_FILE_TRAIT not in host.traits:
            return None
        inventory = host.inventories.get(MEMORY_MB)
        if inventory is None or not inventory.detailed or inventory.allocation_ratio == 1.0:
            return None
        words = (
            f"file-backed with {MEMORY_MB} allocation_ratio "
            f"{inventory.allocation_ratio:g} (must be 1.0)"
        )
        return Rejection(f"is {words}", f"are {words}")
