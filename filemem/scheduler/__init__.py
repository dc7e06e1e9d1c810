"""The scheduler: picks a host for a guest and claims its resources in Placement."""

from __future__ import annotations

from filemem.scheduler.host_state import HostRecord
from filemem.scheduler.manager import (
    STRATEGIES,
    HostAggregateMetadata,
    NoValidHost,
    Scheduler,
    SchedulerSettings,
    Selection,
    no_aggregates,
)
from filemem.scheduler.request import PlacementRequest, RequestSpec, build_request

__all__ = [
    "STRATEGIES",
    "HostAggregateMetadata",
    "HostRecord",
    "NoValidHost",
    "PlacementRequest",
    "RequestSpec",
    "Scheduler",
    "SchedulerSettings",
    "Selection",
    "build_request",
    "no_aggregates",
]
