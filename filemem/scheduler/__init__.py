"""The scheduler: picks a host for a guest and claims its resources in Placement."""

from __future__ import annotations

from filemem.scheduler.host_state import HostRecord
from filemem.scheduler.manager import (
    STRATEGIES,
    NoValidHost,
    Scheduler,
    SchedulerSettings,
    Selection,
)
from filemem.scheduler.request import PlacementRequest, RequestSpec, build_request

__all__ = [
    "STRATEGIES",
    "HostRecord",
    "NoValidHost",
    "PlacementRequest",
    "RequestSpec",
    "Scheduler",
    "SchedulerSettings",
    "Selection",
    "build_request",
]
