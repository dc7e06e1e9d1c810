"""ComputeEnabledFilter: no guests for a compute service that is disabled or down."""

from __future__ import annotations

from filemem.scheduler.filters.base import BaseFilter, Rejection
from filemem.scheduler.host_state import HostState
from filemem.scheduler.request import PlacementRequest

_DISABLED = Rejection("is disabled", "are disabled")
_DOWN = Rejection(
    "is down (no recent report from its agent)", "are down (no recent report from their agents)"
)


class ComputeEnabledFilter(BaseFilter):
    def check(self, host: HostState, request: PlacementRequest) -> Rejection | None:
        if host.disabled:
            return _DISABLED
        return _DOWN if host.down else None
