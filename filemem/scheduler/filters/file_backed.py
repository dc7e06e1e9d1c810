"""FileBackedMemoryFilter: huge-page guests never land on file-backed hosts."""

from __future__ import annotations

from filemem.scheduler.filters.base import BaseFilter, Rejection
from filemem.scheduler.host_state import HostState
from filemem.scheduler.request import FILE_BACKED_TRAIT, MEM_PAGE_SIZE, PlacementRequest


class FileBackedMemoryFilter(BaseFilter):
    """Refuses hosts with COMPUTE_MEM_BACKING_FILE for a flavor that sets hw:mem_page_size.

    Placement already excludes them through the forbidden trait; this repeats the rule on the
    cached traits so a cache-driven pick, or a request built without the trait, cannot slip.
    """

    def check(self, host: HostState, request: PlacementRequest) -> Rejection | None:
        if not request.wants_huge_pages or FILE_BACKED_TRAIT not in host.traits:
            return None
        why = (f"but the flavor asks for huge pages ({MEM_PAGE_SIZE}="
               f"{request.mem_page_size})")
        return Rejection(f"has {FILE_BACKED_TRAIT} {why}", f"have {FILE_BACKED_TRAIT} {why}")
