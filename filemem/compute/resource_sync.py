"""The agent's resource loop: Placement inventory/traits sync, allocation heal and metrics."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from filemem.common.resources import MEMORY_MB
from filemem.compute import metrics
from filemem.compute.host import ComputeHost
from filemem.compute.manager import HealResult, Placed
from filemem.compute.tracker import StoreSample, SyncResult
from filemem.compute.working_set import GuestWorkingSet, HostWorkingSet, WorkingSetSampler
from filemem.exceptions import FilememError, PlacementError

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class CycleResult:
    sync: SyncResult | None = None
    heal: HealResult | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class ResourceSyncLoop:
    """Sync inventory and traits, heal allocations, write metrics: now, then every `interval` s.

    Backs off while Placement fails; guests are never touched by a failed cycle.
    """

    def __init__(
        self,
        host: ComputeHost,
        *,
        interval: float,
        retry_interval: float = 1.0,
        stop: threading.Event | None = None,
        clock: Callable[[], float] = time.time,
        keep: Callable[[], Iterable[str]] = tuple,
        report_usage: Callable[[dict[str, GuestWorkingSet]], None] | None = None,
        moving: Callable[[], Iterable[str]] = tuple,
        placed: Callable[[], Mapping[str, Placed]] = dict,
        after_first_sync: Callable[[], None] | None = None,
    ) -> None:
        """`keep` names consumers heal must not drop though no guest exists yet: instances
        the scheduler claimed for this host (the API's desired set, once an agent has one);
        `moving` names guests being live-migrated, which heal must not claim for; `placed`
        is what the API allocated to its settled instances, which heal repairs drift to.
        `after_first_sync` runs once the first sync has put the inventory in Placement (the
        agent's heartbeat: the API believes no store room beyond what Placement holds, so
        the registration before the first sync carried none)."""
        self.host = host
        self._after_first_sync = after_first_sync
        self._keep = keep
        self._moving = moving
        self._placed = placed
        self.interval = interval
        self.retry_interval = min(retry_interval, interval)
        self.stop = stop or threading.Event()
        self._clock = clock
        self._report_usage = report_usage
        store_dir = (
            host.driver.memory_backing_dir() if host.conf.libvirt.file_backed_memory else None
        )
        self._sampler = WorkingSetSampler(store_dir)
        self.last_working_set: HostWorkingSet | None = None
        self.failures = 0
        self._last_success: float | None = None

    @classmethod
    def from_conf(
        cls,
        host: ComputeHost,
        stop: threading.Event | None = None,
        keep: Callable[[], Iterable[str]] = tuple,
        report_usage: Callable[[dict[str, GuestWorkingSet]], None] | None = None,
        moving: Callable[[], Iterable[str]] = tuple,
        placed: Callable[[], Mapping[str, Placed]] = dict,
        after_first_sync: Callable[[], None] | None = None,
    ) -> ResourceSyncLoop:
        return cls(
            host,
            interval=float(host.conf.update_resources_interval),
            retry_interval=float(host.conf.placement_retry_interval),
            stop=stop,
            keep=keep,
            report_usage=report_usage,
            moving=moving,
            placed=placed,
            after_first_sync=after_first_sync,
        )

    def next_delay(self) -> float:
        """The interval after a success; after failures 1x, 2x, 4x... retry_interval, capped."""
        if self.failures == 0:
            return self.interval
        return min(self.interval, self.retry_interval * 2.0 ** (self.failures - 1))

    def run_once(self) -> CycleResult:
        """Sync, heal, write metrics; a failure is logged and counted, never raised."""
        try:
            sync = self.host.tracker.sync()
            heal = self.host.manager.heal(
                keep=self._keep(), moving=self._moving(), placed=self._placed()
            )
            used = self.host.client.get_usages(sync.provider_uuid).get(MEMORY_MB, 0)
        except Exception as exc:
            self.failures += 1
            self._report_failure(exc)
            self._write_metrics(None, None, self._safe_store_sample())
            return CycleResult(error=str(exc))
        if self.failures:
            LOG.info("Placement reachable again after %d failed attempt(s)", self.failures)
        self.failures = 0
        self._last_success = self._clock()
        self._write_metrics(sync, used, sync.store)
        self._announce_first_sync()
        return CycleResult(sync=sync, heal=heal)

    def _announce_first_sync(self) -> None:
        """Run `after_first_sync` once; a failure is logged and tried after the next sync."""
        if self._after_first_sync is None:
            return
        try:
            self._after_first_sync()
        except Exception as exc:
            LOG.warning("after the first sync: %s; trying again after the next one", exc)
            return
        self._after_first_sync = None

    def _report_failure(self, exc: Exception) -> None:
        delay = self.next_delay()
        what = "Placement" if isinstance(exc, PlacementError) else "resource sync"
        if isinstance(exc, FilememError):
            LOG.error(
                "%s failed (attempt %d): %s; guests are left running untouched; retrying in %.1f s",
                what,
                self.failures,
                exc,
                delay,
            )
        else:
            LOG.exception(
                "resource sync failed unexpectedly (attempt %d); guests are left "
                "running untouched; retrying in %.1f s",
                self.failures,
                delay,
            )

    def run(self) -> None:
        """Until `stop` is set; the cycle in flight finishes first."""
        LOG.info(
            "filemem-compute on host %s: provider %s, Placement at %s, every %.0f s",
            self.host.tracker.name,
            self.host.tracker.provider_uuid,
            self.host.client.endpoint,
            self.interval,
        )
        while not self.stop.is_set():
            self.run_once()
            if self.stop.wait(self.next_delay()):
                break
        LOG.info("filemem-compute stopped")

    # -- metrics --------------------------------------------------------------------------

    def _safe_store_sample(self) -> StoreSample | None:
        try:
            return self.host.tracker.sample_store()
        except (OSError, FilememError) as exc:
            LOG.debug("backing store not readable for metrics: %s", exc)
            return None

    def _working_set(self) -> HostWorkingSet | None:
        try:
            guests = [g for g in self.host.driver.list_guests() if self.host.manager.owns(g)]
            return self._sampler.sample(guests, time.monotonic())
        except (OSError, FilememError) as exc:
            LOG.debug("working set not sampled for metrics: %s", exc)
            return None

    def _write_metrics(
        self, sync: SyncResult | None, used: int | None, sample: StoreSample | None
    ) -> None:
        memory = sync.inventory.inventories.get(MEMORY_MB) if sync else None
        working = self._working_set()
        self.last_working_set = working
        pressure = working.pressure if working else None
        snapshot = metrics.MetricsSnapshot(
            placement_up=sync is not None,
            last_sync_timestamp=self._last_success,
            memory_mb_total=memory["total"] if memory else None,
            memory_mb_reserved=memory["reserved"] if memory else None,
            memory_mb_used=used,
            capacity_reduced=sync.inventory.capacity_reduced if sync else None,
            store_size_bytes=sample.facts.size_bytes if sample else None,
            store_free_bytes=sample.facts.free_bytes if sample else None,
            store_written_bytes=working.counters.write_bytes if working else None,
            refaults=pressure.refaults if pressure else None,
            pressure_some_avg10=pressure.psi_some.avg10 if pressure and pressure.psi_some else None,
            pressure_full_avg10=pressure.psi_full.avg10 if pressure and pressure.psi_full else None,
            guests=[
                metrics.GuestMetric(
                    g.uuid, g.name, g.store_bytes, g.nominal_bytes, g.resident_bytes, g.major_faults
                )
                for g in (working.guests if working else ())
            ],
        )
        try:
            self.host.metrics.publish(snapshot)
        except OSError as exc:
            LOG.error("cannot write metrics to %s: %s", self.host.metrics.textfile, exc)
        if working is not None and self._report_usage is not None:
            self._send_usage(working)

    def _send_usage(self, working: HostWorkingSet) -> None:
        """The API shows each guest's working set to admins; a failure only costs freshness."""
        assert self._report_usage is not None
        try:
            self._report_usage({g.uuid: g for g in working.guests})
        except FilememError as exc:
            LOG.warning("could not report guests' memory usage to the API: %s", exc)
