"""The agent's reconcile loop: register with the API, watch this host's instances, converge."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import filemem
from filemem.compute import image_cache
from filemem.compute.agent_api import (
    AgentApi,
    AgentApiClient,
    ApiRefused,
    ApiUnavailable,
    RegistrationRefused,
)
from filemem.compute.host import ComputeHost
from filemem.compute.image_cache import ImageCache
from filemem.compute.live_migration import registration_details, store_free_mb
from filemem.compute.manager import Placed, flavor_resources
from filemem.compute.reconcile.executor import PassResult, PlanExecutor
from filemem.compute.reconcile.plan import DesiredInstance
from filemem.compute.working_set import GuestWorkingSet
from filemem.exceptions import FilememError

LOG = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 30.0


class ReconcileLoop:
    """Level-triggered: every watch answer is the full desired set, and every pass plans from
    it and libvirt afresh, so a restarted agent converges without remembering anything."""

    def __init__(
        self,
        host: ComputeHost,
        api: AgentApi,
        *,
        wait: float = 20.0,
        retry_interval: float = 1.0,
        stop: threading.Event | None = None,
        images: ImageCache | None = None,
    ) -> None:
        self.host = host
        self.api = api
        self.wait = wait
        self.retry_interval = retry_interval
        self.stop = stop or threading.Event()
        self.images = images if images is not None else _image_cache(host, api)
        self.executor = PlanExecutor(
            host.tracker.name,
            host.manager,
            host.driver,
            api,
            network=host.network,
            images=self.images,
        )
        self._last_cache_pass = time.monotonic()
        self._desired: list[DesiredInstance] = []
        self._lock = threading.Lock()
        self._last_heartbeat = 0.0
        self.passes = 0
        # Why the API refused this host (RegistrationRefused): the agent then stops.
        self.refused: str | None = None

    def desired_uuids(self) -> list[str]:
        """Consumers heal must keep: instances claimed for this host, maybe not spawned yet,
        and their unfinished moves (a resize's migration holds the old flavor here)."""
        with self._lock:
            return [
                uuid
                for want in self._desired
                for uuid in (want.uuid, *want.migration_uuids, *_live_migration_uuid(want))
            ]

    def placed_allocations(self) -> dict[str, Placed]:
        """What the API allocated to its settled instances here (no task, move or deletion
        under way), which heal compares Placement with; the others may be mid-change."""
        with self._lock:
            return {
                want.uuid: Placed(flavor_resources(want.flavor), want.project_id, want.user_id)
                for want in self._desired
                if want.task_state is None
                and not want.deleted_requested
                and not want.migration_uuids
                and want.live_migration is None
                and want.incoming_migration is None
                and want.project_id
                and want.user_id
            }

    def migrating_uuids(self) -> list[str]:
        """Instances being live-migrated to or from this host: heal claims nothing for them."""
        with self._lock:
            return [
                want.uuid
                for want in self._desired
                if want.live_migration is not None or want.incoming_migration is not None
            ]

    def heartbeat(self) -> None:
        """Register; the answer's aggregate ratio is what the resource loop reports next."""
        ratio = self.api.register(
            self.host.tracker.name,
            self.host.tracker.provider_uuid,
            int(self.host.conf.libvirt.file_backed_memory),
            self.registration_details(),
        )
        tracker = self.host.tracker
        if ratio != tracker.aggregate_ram_ratio:
            LOG.info(
                "MEMORY_MB allocation_ratio from the host's aggregates: %s",
                ratio if ratio is not None else "none (using [DEFAULT] ram_allocation_ratio)",
            )
            tracker.aggregate_ram_ratio = ratio
        self._last_heartbeat = time.monotonic()

    def registration_details(self) -> Mapping[str, Any]:
        """capabilities, version, migration_address and store_free_mb (the contract's)."""
        conf, driver = self.host.conf, self.host.driver
        try:
            versions = driver.versions()
        except FilememError as exc:
            LOG.warning("libvirt/QEMU versions unknown, no capabilities reported: %s", exc)
            versions = None
        free_mb = None
        if conf.libvirt.file_backed_memory:
            sample = self.host.tracker.sample_store()
            if sample is not None:
                running = [(f.nominal_bytes, f.allocated_bytes) for f in sample.files.values()]
                free_mb = store_free_mb(
                    sample.facts.free_bytes, running, conf.libvirt.backing_store_headroom_mb
                )
        return registration_details(
            versions,
            filemem.__version__,
            conf.libvirt.live_migration_inbound_addr or conf.host,
            free_mb,
        )

    def report_memory_usage(self, guests: Mapping[str, GuestWorkingSet]) -> None:
        """Send the resource loop's working sets to the API (the admin view of servers)."""
        sampled_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        body = {
            uuid: {
                "nominal_bytes": g.nominal_bytes,
                "store_bytes": g.store_bytes,
                "resident_bytes": g.resident_bytes,
                "major_faults": g.major_faults,
                "sampled_at": sampled_at,
            }
            for uuid, g in guests.items()
        }
        self.api.report_memory_usage(self.host.tracker.name, body)

    def run_once(self, cursor: int | None) -> tuple[int, PassResult]:
        if time.monotonic() - self._last_heartbeat > HEARTBEAT_SECONDS:
            self.heartbeat()
        new_cursor, desired = self.api.watch(self.host.tracker.name, cursor, self.wait)
        with self._lock:
            self._desired = desired
        result = self.executor.run_pass(desired)
        self.passes += 1
        self.clean_image_cache(desired)
        for uuid, reason in result.failed.items():
            LOG.warning("instance %s: %s", uuid, reason)
        return new_cursor, result

    def clean_image_cache(self, desired: list[DesiredInstance], force: bool = False) -> None:
        """Every [image_cache] manager_interval: remove the bases none of `desired` uses. A
        failure is logged, never the loop's: the cache is retried at the next interval."""
        if self.images is None:
            return
        interval = int(self.host.conf.image_cache.manager_interval)
        due = time.monotonic() - self._last_cache_pass >= interval
        if interval < 0 or not (due or force):
            return
        self._last_cache_pass = time.monotonic()
        overlays = (Path(self.host.conf.state_path) / "instances").glob("*/disk.qcow2")
        try:
            used = image_cache.in_use(want.image for want in desired)
            self.images.clean(used | image_cache.backing_names(overlays, self.images.directory))
        except OSError as exc:
            LOG.error("image cache %s: cleanup failed: %s", self.images.directory, exc)

    def run(self) -> None:
        """Until `stop`; transient failures (API, libvirt, Placement down) back off and retry."""
        cursor: int | None = None
        failures = 0
        while not self.stop.is_set():
            try:
                cursor, result = self.run_once(cursor)
            except RegistrationRefused as exc:
                # Not transient: an operator must change the aggregate or this host's config.
                LOG.error("the API refused this host: %s; stopping", exc.reason)
                self.refused = exc.reason
                self.stop.set()
                break
            except (ApiUnavailable, ApiRefused, FilememError) as exc:
                failures += 1
                cursor = None  # ask for everything again once we are back
                delay = min(30.0, self.retry_interval * 2 ** (failures - 1))
                LOG.error(
                    "reconcile failed (attempt %d): %s; retrying in %.1f s", failures, exc, delay
                )
                if self.stop.wait(delay):
                    break
                continue
            if failures:
                LOG.info("reconcile works again after %d failed attempt(s)", failures)
            failures = 0
            if result.done:
                LOG.info("reconcile pass: %s", ", ".join(f"{s.kind} {s.uuid}" for s in result.done))


def _image_cache(host: ComputeHost, api: AgentApi) -> ImageCache | None:
    """The cache under state_path, downloading through `api` when it speaks HTTP (test fakes
    of the API boot path images only)."""
    if not isinstance(api, AgentApiClient):
        return None
    conf = host.conf
    return ImageCache(
        Path(conf.state_path) / image_cache.BASE_DIR,
        api.download_image,
        min_age=float(conf.image_cache.remove_unused_original_minimum_age_seconds),
    )


def _live_migration_uuid(want: DesiredInstance) -> tuple[str, ...]:
    """The live migration's consumer holds the source allocation (also in migration_uuids by
    the contract; kept here even from an API that leaves it out)."""
    return (want.live_migration.migration_uuid,) if want.live_migration is not None else ()
