"""FreeMemoryWeigher: spread guests over the hosts with the most free MEMORY_MB."""

from __future__ import annotations

from filemem.common.resources import MEMORY_MB
from filemem.scheduler.host_state import HostState
from filemem.scheduler.weights.base import BaseWeigher


class FreeMemoryWeigher(BaseWeigher):
    """Free MEMORY_MB as Placement counts it; a negative multiplier stacks instead of spreading.

    On a file-backed host that is room left in the backing store, since its MEMORY_MB is the
    store's size (allocation_ratio 1.0).
    """

    def raw(self, host: HostState) -> float:
        return float(host.free(MEMORY_MB))
