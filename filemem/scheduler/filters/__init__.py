"""Scheduler filters: small rules a host must pass, each explaining a refusal in words."""

from __future__ import annotations

from filemem.scheduler.filters.aggregate_extra_specs import AggregateInstanceExtraSpecsFilter
from filemem.scheduler.filters.base import BaseFilter, Rejection
from filemem.scheduler.filters.compute_enabled import ComputeEnabledFilter
from filemem.scheduler.filters.file_backed import FileBackedMemoryFilter
from filemem.scheduler.filters.ram_ratio import RamAllocationRatioFilter
from filemem.scheduler.filters.resources import ResourcesFilter

__all__ = [
    "AggregateInstanceExtraSpecsFilter",
    "BaseFilter",
    "ComputeEnabledFilter",
    "FileBackedMemoryFilter",
    "RamAllocationRatioFilter",
    "Rejection",
    "ResourcesFilter",
    "default_filters",
]


def default_filters() -> list[BaseFilter]:
    """In the order a refusal is reported: the first filter that refuses a host names why."""
    return [
        ComputeEnabledFilter(),
        FileBackedMemoryFilter(),
        RamAllocationRatioFilter(),
        AggregateInstanceExtraSpecsFilter(),
        ResourcesFilter(),
    ]
