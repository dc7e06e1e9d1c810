"""Host-state cache: every host's capacity, usage and traits from Placement, kept in weight order.

Placement has no bulk inventory read: its only call that returns capacity and usage of many
providers at once is GET /allocation_candidates, whose provider_summaries hold capacity
((total - reserved) * allocation_ratio), used and traits of every matching provider. One such
call without a limit, for MEMORY_MB:1, is the full refresh here (all hosts with free memory);
the inventory fields it lacks (reserved, ratio, min/max_unit, step_size) are read per host
when a claim there is refused (2 GETs), and Placement checks them on every claim anyway.
Reading every inventory one by one would cost one GET per host (README: "What scheduling
costs", measured by bench/scheduler_scale.py).

Between refreshes the cache is kept true enough locally: a pick reserves the request on the
chosen host, a refused claim re-reads that one host, and hosts stay sorted by weight so a
pick walks a few hosts instead of filtering all of them. A refresh that is due runs in a
background thread while picks use the old state; only the first load, and the check before
NoValidHost, wait for one.
Staleness can cost a refused claim, never an over-commit: Placement refuses what does not
fit. The strategies and the decision between them: scheduler/manager.py.
"""

from __future__ import annotations

import bisect
import contextlib
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import TypeVar

from filemem.common.resources import MEMORY_MB
from filemem.placement.client import PlacementApiError, PlacementClient
from filemem.scheduler.host_state import (
    HostRecord,
    HostState,
    state_from_provider,
    state_from_summary,
    unreported_state,
)
from filemem.scheduler.weights.base import BaseWeigher, Scorer

LOG = logging.getLogger(__name__)

HostSource = Callable[[], Sequence[HostRecord]]
T = TypeVar("T")

# Hosts the bulk answer leaves out (full, or new) are read one by one when there are this few,
# so small clouds get exact numbers in NoValidHost reasons; more would cost one GET each.
MAX_SINGLE_READS = 16
_SORT_KEY = attrgetter("sort_key")


@dataclass
class CacheStats:
    full_refreshes: int = 0
    last_full_refresh_s: float = 0.0
    host_refreshes: int = 0
    last_host_refresh_s: float = 0.0
    failed_refreshes: int = 0


class HostStateCache:
    """Thread-safe; every read of Placement happens outside the state lock."""

    def __init__(
        self,
        client: PlacementClient,
        host_source: HostSource,
        weighers: Sequence[BaseWeigher],
        *,
        refresh_interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._host_source = host_source
        self._scorer = Scorer(weighers)
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._lock = threading.Lock()  # guards _states, _order, _records and HostState fields
        self._refresh_lock = threading.Lock()  # one full refresh at a time
        self._states: dict[str, HostState] = {}
        self._order: list[HostState] = []
        self._records: dict[str, HostRecord] = {}
        self._records_at = -math.inf
        self._refreshed_at: float | None = None  # when the last full refresh *started*
        self._attempted_at = -math.inf
        self._background: threading.Thread | None = None
        self._ticket = itertools.count()
        self.stats = CacheStats()

    # -- reading Placement -----------------------------------------------------------------

    def _read_records(self) -> dict[str, HostRecord]:
        return {record.provider_uuid: record for record in self._host_source()}

    def _read_host(self, record: HostRecord, traits: frozenset[str] | None = None) -> HostState:
        """One host in full detail: inventories, usages, and traits unless they are given."""
        uuid = record.provider_uuid
        try:
            _, inventories = self._client.get_inventories(uuid)
            usage = self._client.get_usages(uuid)
            if traits is None:
                traits = frozenset(self._client.get_traits(uuid)[1])
        except PlacementApiError as exc:
            if exc.status == 404:
                return unreported_state(record, missing=True)
            raise
        return state_from_provider(record, inventories, usage, traits)

    def _read_all(self, records: Mapping[str, HostRecord]) -> dict[str, HostState]:
        summaries = self._client.allocation_candidates({MEMORY_MB: 1}).provider_summaries
        states: dict[str, HostState] = {}
        left_out: list[HostRecord] = []
        for uuid, record in records.items():
            summary = summaries.get(uuid)
            if summary is None:
                left_out.append(record)
                states[uuid] = unreported_state(record)
            else:
                states[uuid] = state_from_summary(record, summary)
        if len(left_out) <= MAX_SINGLE_READS:
            for record in left_out:
                states[record.provider_uuid] = self._read_host(record)
        return states

    # -- full refreshes --------------------------------------------------------------------

    def _refresh_now(self) -> None:
        """Read everything, then swap it in; the caller holds _refresh_lock."""
        started = self._clock()
        self._attempted_at = started
        try:
            records = self._read_records()
            states = self._read_all(records)
        except Exception:
            self.stats.failed_refreshes += 1
            raise
        with self._lock:
            self._keep_single_reads(states)
            self._records, self._states = records, states
            self._records_at = started
            self._rebuild_order()
            self._refreshed_at = started
        self.stats.full_refreshes += 1
        self.stats.last_full_refresh_s = self._clock() - started
        LOG.info(
            "host-state cache: %d hosts read from Placement in %.3f s",
            len(states),
            self.stats.last_full_refresh_s,
        )

    def _keep_single_reads(self, states: dict[str, HostState]) -> None:
        """Hosts the bulk answer left out keep what a single read last said of them.

        The bulk query asks for 1 MB, so it also leaves out hosts whose inventory refuses
        1 MB (min_unit or step_size above 1; filemem's agents use 1): without this they
        would never be picked again. A stale read costs a refused claim at worst.
        """
        for uuid, state in states.items():
            old = self._states.get(uuid)
            if not state.reported and old is not None and old.detailed:
                old.set_record(state.record())
                states[uuid] = old

    def refresh(self) -> None:
        """A full refresh now, waiting for one already running first."""
        with self._refresh_lock:
            self._refresh_now()

    def ensure_fresh(self, since: float) -> None:
        """Make sure the state was read from Placement at or after `since` (a clock() value).

        Threads asking together share one refresh: the later ones find it already done.
        """
        with self._refresh_lock:
            if self._refreshed_at is None or self._refreshed_at < since:
                self._refresh_now()

    def ensure_loaded(self) -> None:
        """Load once, synchronously; afterwards start a background refresh when one is due."""
        if self._refreshed_at is None:
            self.ensure_fresh(-math.inf)
            return
        if self._clock() - max(self._refreshed_at, self._attempted_at) < self.refresh_interval:
            return
        if not self._refresh_lock.acquire(blocking=False):
            return  # a refresh is running already
        self._attempted_at = self._clock()
        thread = threading.Thread(
            target=self._refresh_in_background, daemon=True, name="scheduler-cache-refresh"
        )
        self._background = thread
        thread.start()

    def _refresh_in_background(self) -> None:
        try:
            self._refresh_now()
        except Exception as exc:  # picks go on with the old state, whatever went wrong
            LOG.warning("host-state cache refresh failed, keeping the old state: %s", exc)
        finally:
            self._refresh_lock.release()

    def wait_for_background(self, timeout: float | None = None) -> None:
        thread = self._background
        if thread is not None:
            thread.join(timeout)

    @property
    def refreshed_at(self) -> float | None:
        return self._refreshed_at

    # -- single hosts ----------------------------------------------------------------------

    def refresh_host(self, provider_uuid: str) -> None:
        """Re-read one host's inventories and usage (after Placement refused a claim there).

        Its traits are kept: a refused claim says nothing about them, and the full refresh
        re-reads them; that saves one GET on every lost race.
        """
        with self._lock:
            record = self._records.get(provider_uuid)
            known = self._states.get(provider_uuid)
            traits = known.traits if known is not None and known.reported else None
        if record is None:
            return
        started = self._clock()
        state = self._read_host(record, traits)
        with self._lock:
            old = self._states.get(provider_uuid)
            if old is not None:
                self._remove_from_order(old)
            self._states[provider_uuid] = state
            self._insert_in_order(state)
        self.stats.host_refreshes += 1
        self.stats.last_host_refresh_s = self._clock() - started

    def update_records(self) -> None:
        """Re-read host_source now (a service was added, disabled or removed), not Placement."""
        started = self._clock()
        records = self._read_records()
        with self._lock:
            new = [r for uuid, r in records.items() if uuid not in self._states]
        fresh = {r.provider_uuid: self._read_host(r) for r in new[:MAX_SINGLE_READS]}
        with self._lock:
            for uuid in [uuid for uuid in self._states if uuid not in records]:
                self._remove_from_order(self._states.pop(uuid))
            for uuid, record in records.items():
                state = self._states.get(uuid)
                if state is not None:
                    state.set_record(record)
                    continue
                state = fresh.get(uuid) or unreported_state(record)
                self._states[uuid] = state
                self._insert_in_order(state)
            self._records, self._records_at = records, started

    def records(self) -> dict[str, HostRecord]:
        """host_source's hosts by provider uuid, re-read when older than refresh_interval.

        Reads no Placement data: for picking from Placement's own allocation candidates.
        """
        now = self._clock()
        with self._lock:
            if now - self._records_at < self.refresh_interval:
                return dict(self._records)
        records = self._read_records()
        with self._lock:
            self._records, self._records_at = records, now
            for uuid, record in records.items():
                state = self._states.get(uuid)
                if state is not None:
                    state.set_record(record)
        return dict(records)

    # -- picking ---------------------------------------------------------------------------

    def reserve(
        self,
        choose: Callable[[Sequence[HostState]], HostState | None],
        resources: Mapping[str, int],
    ) -> HostState | None:
        """Let `choose` pick from the weight-ordered hosts and count `resources` there at once.

        Done under the lock so concurrent requests see each other's picks before their claims
        reach Placement.
        """
        with self._lock:
            host = choose(self._order)
            if host is not None:
                self._remove_from_order(host)
                host.consume(resources)
                self._insert_in_order(host)
            return host

    def release(self, host: HostState, resources: Mapping[str, int]) -> None:
        """Undo reserve() after a failed claim (a no-op when a refresh replaced the host)."""
        with self._lock:
            if self._states.get(host.provider_uuid) is host:
                self._remove_from_order(host)
                host.release(resources)
                self._insert_in_order(host)

    def inspect(self, look: Callable[[Sequence[HostState]], T]) -> T:
        """Run `look` on the weight-ordered hosts under the lock (for explanations, tests)."""
        with self._lock:
            return look(self._order)

    # -- weight order (callers hold _lock) -------------------------------------------------

    def _rebuild_order(self) -> None:
        self._scorer.fit(self._states.values())
        for state in self._states.values():
            state.sort_key = (-self._scorer.score(state), next(self._ticket))
        self._order = sorted(self._states.values(), key=_SORT_KEY)

    def _insert_in_order(self, state: HostState) -> None:
        # The ticket makes every key unique, so removal is one bisection even when thousands
        # of hosts tie; being the latest, it also puts the host after its equals: ties take
        # turns.
        state.sort_key = (-self._scorer.score(state), next(self._ticket))
        bisect.insort(self._order, state, key=_SORT_KEY)

    def _remove_from_order(self, state: HostState) -> None:
        i = bisect.bisect_left(self._order, state.sort_key, key=_SORT_KEY)
        if i < len(self._order) and self._order[i] is state:
            del self._order[i]
            return
        with contextlib.suppress(ValueError):
            self._order.remove(state)  # not where its key says: changed without the lock
