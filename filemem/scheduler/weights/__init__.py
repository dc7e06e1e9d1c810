"""Scheduler weighers: host-state preferences, scaled and summed into one sort key."""

from __future__ import annotations

from filemem.scheduler.weights.base import BaseWeigher, Scorer
from filemem.scheduler.weights.free_memory import FreeMemoryWeigher

__all__ = ["BaseWeigher", "FreeMemoryWeigher", "Scorer", "default_weighers"]


def default_weighers(free_memory_multiplier: float = 1.0) -> list[BaseWeigher]:
    return [FreeMemoryWeigher(free_memory_multiplier)]
