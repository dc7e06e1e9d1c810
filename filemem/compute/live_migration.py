"""The agent's live migrations: the source runs each in the background and reports its events;
the destination prepares. The reconcile pass only starts, steers and observes them."""

from __future__ import annotations

import datetime as dt
import logging
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filemem.backing import capacity
from filemem.common.guests import GuestInfo
from filemem.common.resources import MIB
from filemem.common.versions import MIN_LIBVIRT_VERSION, MIN_QEMU_VERSION, Version
from filemem.compute.agent_api import AgentApi
from filemem.compute.config_drive import write_config_drive
from filemem.compute.reconcile.plan import (
    LIVE_MIGRATION_EVENT,
    DesiredInstance,
    LiveMigrationSpec,
    MigrationFacts,
)
from filemem.exceptions import FilememError, GuestNotFound
from filemem.virt.driver import HypervisorDriver, LiveMigration, MigrationTarget
from filemem.virt.migration import (
    MigrationOutcome,
    MigrationProgress,
    MigrationResult,
    ProgressCallback,
)

LOG = logging.getLogger(__name__)

PROGRESS_INTERVAL = 1.0  # the contract: a progress event about every 0.5-1 s
MAX_REASON = 65536  # the contract's bound on `reason`
FINAL_REPORT_ATTEMPTS = 60  # the end of a migration is retried this many times, 1 s apart


def source_marker(instance_dir: Path, migration_uuid: str) -> Path:
    """Written before the source starts libvirt's migration: a restarted agent that finds it
    and no job knows the migration was interrupted."""
    return instance_dir / f"migration-{migration_uuid}.source"


def dest_marker(instance_dir: Path, migration_uuid: str) -> Path:
    """Written once the destination reported `prepared`. The source sees it too when both
    hosts share the instance directory's file system, and then keeps the directory."""
    return instance_dir / f"migration-{migration_uuid}.dest"


def file_backed_capable(
    libvirt_version: tuple[int, int, int], qemu_version: tuple[int, ...]
) -> bool:
    """The guide's version floor for file-backed guests (libvirt 4.0.0, QEMU 2.6.0)."""
    return libvirt_version >= MIN_LIBVIRT_VERSION and qemu_version >= MIN_QEMU_VERSION


def store_free_mb(free_bytes: int, running: list[tuple[int, int]], headroom_mb: int) -> int:
    """Free room for guests arriving now, MiB: the store's free room less what running guests
    may still allocate and less the headroom (the capacity guard's own figure)."""
    return capacity.room_for_new_guest(free_bytes, running, headroom_mb * MIB) // MIB


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


@dataclass
class _Running:
    uuid: str
    migration_uuid: str
    handle: LiveMigration
    started_at: str
    started_mono: float = field(default_factory=time.monotonic)
    forced: bool = False
    aborted: bool = False


class MigrationRunner:
    """Outgoing migrations of this agent, by instance uuid; each ends in its own thread, which
    posts the last event before the migration counts as finished here."""

    def __init__(self, driver: HypervisorDriver, api: AgentApi) -> None:
        self.driver = driver
        self.api = api
        self._running: dict[str, _Running] = {}
        self._finished: set[str] = set()  # migration uuids this process ran to their end
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        # Held while an incoming migration prepares its instance directory, and while a
        # finished outgoing one removes it: the same guest can come back before the thread
        # of its departure cleaned up (seen: the new prepare's directory removed under it).
        self._workdir_lock = threading.Lock()
        self._prepared_at: dict[str, float] = {}  # uuid -> when an incoming move prepared it

    def facts(self, want: DesiredInstance, have: GuestInfo | None) -> MigrationFacts:
        """What the plan needs to know of `want`'s migration on this host, read now."""
        lm, incoming = want.live_migration, want.incoming_migration
        mid = lm.migration_uuid if lm else incoming.migration_uuid if incoming else ""
        workdir = self.driver.instance_dir(want.uuid)
        job_active, persistent = False, True
        if have is not None:
            try:
                job = self.driver.guest_job(want.uuid)
                job_active, persistent = job.active, job.persistent
            except GuestNotFound:
                pass
        with self._lock:
            running = want.uuid in self._running
            finished = mid in self._finished
        return MigrationFacts(
            running_here=running,
            finished_here=finished,
            job_active=job_active,
            persistent=persistent,
            started_marker=source_marker(workdir, mid).exists(),
            prepared_marker=dest_marker(workdir, mid).exists(),
        )

    def orphan_facts(self, uuid: str) -> MigrationFacts:
        """For a guest nobody wants here: whether a migration job holds it."""
        try:
            return MigrationFacts(job_active=self.driver.guest_job(uuid).active)
        except GuestNotFound:
            return MigrationFacts()

    def start(self, want: DesiredInstance) -> None:
        """Report `started`, then start libvirt's migration; a refusal is reported `failed`."""
        lm = want.live_migration
        assert lm is not None
        marker = source_marker(self.driver.instance_dir(want.uuid), lm.migration_uuid)
        started_at = _now()
        self.api.migration_event(lm.migration_uuid, {"event": "started"})
        marker.touch()
        target = MigrationTarget(
            address=lm.dest_address,
            file_backed_memory_mb=lm.dest_file_backed_memory_mb,
            block_migration=lm.block_migration,
        )
        LOG.info("live-migrating %s to %s (%s)", want.uuid, lm.dest_host, lm.dest_address)
        try:
            handle = self.driver.live_migrate(want.uuid, target, self._reporter(lm))
        except FilememError as exc:
            result = MigrationResult(MigrationOutcome.FAILED, str(exc))
            self._report_end(want.uuid, lm, result, started_at)
            marker.unlink(missing_ok=True)
            with self._lock:
                self._finished.add(lm.migration_uuid)
            return
        running = _Running(want.uuid, lm.migration_uuid, handle, started_at)
        with self._lock:
            self._running[want.uuid] = running
        thread = threading.Thread(
            target=self._finish, args=(running, lm), name=f"lm-{want.uuid}", daemon=True
        )
        self._threads.append(thread)
        thread.start()

    def control(self, lm: LiveMigrationSpec, uuid: str) -> None:
        """Carry out the force_complete and abort requests of the API, each once."""
        with self._lock:
            running = self._running.get(uuid)
        if running is None:
            return
        if lm.abort and not running.aborted:
            running.aborted = True
            LOG.info("aborting the live migration of %s", uuid)
            running.handle.abort()
        elif lm.force_complete and not running.forced:
            running.forced = True
            LOG.info("forcing the live migration of %s to complete", uuid)
            running.handle.force_complete()

    def wait_all(self, timeout: float) -> None:
        """For tests and shutdown: wait for every migration thread to end."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def _reporter(self, lm: LiveMigrationSpec) -> ProgressCallback:
        last = [0.0]

        def on_progress(progress: MigrationProgress) -> None:
            if time.monotonic() - last[0] < PROGRESS_INTERVAL:
                return
            last[0] = time.monotonic()
            try:
                self.api.migration_event(lm.migration_uuid, _progress_body("progress", progress))
            except FilememError as exc:  # the next sample tries again
                LOG.warning("progress of migration %s not reported: %s", lm.migration_uuid, exc)

        return on_progress

    def prepare_incoming(
        self, want: DesiredInstance, migration_uuid: str, body: dict[str, Any]
    ) -> None:
        """Make the instance directory and disk ready, report `prepared`, leave the marker."""
        with self._workdir_lock:
            workdir = self.driver.prepare_incoming(want.uuid, want.image)
            # The domain names the config drive, which block migration does not copy (it is
            # read-only): it is made here again from the same facts.
            write_config_drive(self.driver, want)
            self._prepared_at[want.uuid] = time.monotonic()
            LOG.info("prepared %s for its live migration %s", want.uuid, migration_uuid)
            self.api.migration_event(migration_uuid, body)
            dest_marker(workdir, migration_uuid).touch()

    def _finish(self, running: _Running, lm: LiveMigrationSpec) -> None:
        result = running.handle.wait()
        assert result is not None
        workdir = self.driver.instance_dir(running.uuid)
        self._report_end(running.uuid, lm, result, running.started_at)
        with self._workdir_lock:
            came_back = self._prepared_at.get(running.uuid, -1.0) > running.started_mono
            if not came_back:
                self._prepared_at.pop(running.uuid, None)  # its arrival here is history
            if (
                result.outcome is MigrationOutcome.COMPLETED
                and not came_back
                and not dest_marker(workdir, lm.migration_uuid).exists()  # a shared path
            ):
                shutil.rmtree(workdir, ignore_errors=True)  # the guest's files live there now
            source_marker(workdir, lm.migration_uuid).unlink(missing_ok=True)
        with self._lock:
            self._finished.add(lm.migration_uuid)
            self._running.pop(running.uuid, None)

    def _report_end(
        self, uuid: str, lm: LiveMigrationSpec, result: MigrationResult, started_at: str
    ) -> None:
        # The action event first: it is ours to record while the move is still ours.
        self._record_action_event(uuid, result, started_at)
        body = _progress_body(result.outcome.value, result.progress)
        if result.outcome is not MigrationOutcome.COMPLETED:
            body["reason"] = (result.reason or "unknown libvirt error")[:MAX_REASON]
        for attempt in range(FINAL_REPORT_ATTEMPTS):
            try:
                self.api.migration_event(lm.migration_uuid, body)
                break
            except FilememError as exc:
                LOG.warning("migration %s: %s not reported (%s)", lm.migration_uuid, body, exc)
                time.sleep(min(1.0, 0.1 * (attempt + 1)))

    def _record_action_event(self, uuid: str, result: MigrationResult, started_at: str) -> None:
        success = result.outcome is MigrationOutcome.COMPLETED
        event = {
            "event": LIVE_MIGRATION_EVENT,
            "result": "Success" if success else "Error",
            "start_time": started_at,
            "finish_time": _now(),
            "traceback": None if success else f"{result.outcome.value}: {result.reason}",
        }
        try:
            self.api.event(uuid, event)
        except FilememError as exc:
            LOG.warning("could not record event %s of %s: %s", LIVE_MIGRATION_EVENT, uuid, exc)


def _progress_body(event: str, progress: MigrationProgress | None) -> dict[str, Any]:
    body: dict[str, Any] = {"event": event}
    if progress is not None:
        body["memory_total_bytes"] = progress.memory_total_bytes
        body["memory_processed_bytes"] = progress.memory_processed_bytes
        body["memory_remaining_bytes"] = progress.memory_remaining_bytes
    return body


def registration_details(
    versions: tuple[Version, Version] | None,
    version: str,
    migration_address: str,
    free_mb: int | None,
) -> Mapping[str, Any]:
    """The contract's ServiceUpdate fields; capabilities null when the versions are unknown."""
    capabilities = (
        None
        if versions is None
        else {"file_backed_memory": file_backed_capable(*versions), "live_migration": True}
    )
    return {
        "capabilities": capabilities,
        "version": version,
        "migration_address": migration_address,
        "store_free_mb": free_mb,
    }
