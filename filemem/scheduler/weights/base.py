"""The weigher interface, and the scorer that combines weighers into one sort key per host."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence

from filemem.scheduler.host_state import HostState


class BaseWeigher(ABC):
    """Prefers some hosts over others; the higher `raw`, the better (times `multiplier`).

    Weighers see the host state only, not the request: the cache keeps hosts sorted by weight
    and re-sorts one host after a claim instead of weighing thousands per request. A
    preference that depends on the request is a filter's job.
    """

    def __init__(self, multiplier: float = 1.0) -> None:
        self.multiplier = multiplier

    @abstractmethod
    def raw(self, host: HostState) -> float:
        """The unscaled preference for `host`."""


class Scorer:
    """Sum of the weighers' values, each scaled to [0, 1] over a set of hosts (as nova does).

    The scale is fitted once per full refresh and kept for single-host updates in between, so
    every host is compared on the same scale; a value past the fitted range just scores past
    0 or 1.
    """

    def __init__(self, weighers: Sequence[BaseWeigher], hosts: Iterable[HostState] = ()) -> None:
        self._weighers = list(weighers)
        self._ranges: list[tuple[float, float]] = [(0.0, 1.0)] * len(self._weighers)
        self.fit(hosts)

    def fit(self, hosts: Iterable[HostState]) -> None:
        values = [[w.raw(h) for w in self._weighers] for h in hosts]
        if not values:
            return
        for i in range(len(self._weighers)):
            column = [row[i] for row in values]
            low, high = min(column), max(column)
            self._ranges[i] = (low, (high - low) or 1.0)

    def score(self, host: HostState) -> float:
        total = 0.0
        for weigher, (low, span) in zip(self._weighers, self._ranges, strict=True):
            total += weigher.multiplier * (weigher.raw(host) - low) / span
        return total
