"""FileBackedMemoryFilter: huge-page guests never land on file-backed hosts."""

from __future__ import annotations

from filemem.common.resources import MEMORY_BACKING_FILE_TRAIT
from filemem.scheduler.filters.base import BaseFilter, Rejection
from filemem.scheduler.host_state import HostState
from filemem.scheduler.request import PlacementRequest


class FileBackedMemoryFilter(BaseFilter):
    """Refuses hosts with COMPUTE_MEM_BACKING_FILE for a guest whose flavor sets
    hw:mem_page_size or whose image sets hw_mem_page_size.

    Placement already excludes them through the forbidden trait; this repeats the rule on the
    cached traits so a cache-driven pick, or a request built without the trait, cannot slip.
    """

    def check(self, host: HostState, request: PlacementRequest) -> Rejection | None:
        if not request.wants_huge_pages or MEMORY_BACKING_FILE_TRAIT not in host.traits:
            return None
        who = " and ".join(
            name
            for name, value in (
                ("flavor", request.mem_page_size),
                ("image", request.image_mem_page_size),
            )
            if value is not None
        )
        asks = "asks" if " " not in who else "ask"
        why = f"but the {who} {asks} for huge pages ({request.page_size_words()})"
        trait = MEMORY_BACKING_FILE_TRAIT
        return Rejection(f"has {trait} {why}", f"have {trait} {why}")
