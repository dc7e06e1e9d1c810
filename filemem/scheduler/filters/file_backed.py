"""FileBackedMemoryFilter: huge-page guests never land on file-backed hosts."""

from __future__ import annotations

from filemem.common.resources import MEM_PAGE_SIZE, MEMORY_BACKING_FILE_TRAIT
from filemem.scheduler.filters.base import BaseFilter, Rejection
from filemem.scheduler.host_state import HostState
from filemem.scheduler.request import PlacementRequest


class FileBackedMemoryFilter(BaseFilter):
    """Refuses hosts with COMPUTE_MEM_BACKING_FILE for a flavor that sets hw:mem_page_size.

    Placement already excludes them through the forbidden trait; this repeats the rule on the
    cached traits so a cache-driven pick, or a request built without the trait, cannot slip.
    """

    def check(self, host: HostState, request: PlacementRequest) -> Rejection | None:
        if not request.wants_huge_pages or MEMORY_BACKING_FILE_TRAIT not in host.traits:
            return None
        why = f"but the flavor asks for huge pages ({MEM_PAGE_SIZE}={request.mem_page_size})"
        trait = MEMORY_BACKING_FILE_TRAIT
        return Rejection(f"has {trait} {why}", f"have {trait} {why}")
