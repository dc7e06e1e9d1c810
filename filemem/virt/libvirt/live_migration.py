"""An outgoing libvirt live migration: migrateToURI3 in one thread, nova's monitor in another."""

from __future__ import annotations

import logging
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import libvirt

from filemem.exceptions import FilememError, MigrationNotSupported
from filemem.virt import migration
from filemem.virt.driver import GuestJob, LiveMigration, MigrationTarget
from filemem.virt.libvirt.errors import translated
from filemem.virt.migration import (
    MigrationOutcome,
    MigrationProgress,
    MigrationResult,
    MigrationSettings,
    ProgressCallback,
)

LOG = logging.getLogger(__name__)

POLL_SECONDS = 0.5  # nova's monitor interval

_BASE_FLAGS = (
    libvirt.VIR_MIGRATE_LIVE
    | libvirt.VIR_MIGRATE_PEER2PEER
    | libvirt.VIR_MIGRATE_PERSIST_DEST
    | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
)


def migration_flags(settings: MigrationSettings, block_migration: bool) -> int:
    """nova's live_migration_flag set: post-copy, when permitted, wins over auto-converge."""
    flags: int = _BASE_FLAGS
    if block_migration:
        flags |= libvirt.VIR_MIGRATE_NON_SHARED_INC
    if settings.permit_post_copy:
        flags |= libvirt.VIR_MIGRATE_POSTCOPY
    elif settings.permit_auto_converge:
        flags |= libvirt.VIR_MIGRATE_AUTO_CONVERGE
    return flags


def migration_params(
    target: MigrationTarget, xml: str, bandwidth_mib: int, disks: list[str] | None = None
) -> dict[str, Any]:
    """virDomainMigrateToURI3 parameters: QEMU's stream to the target's address, the rewritten
    XML for both the running and the persistent definition, the bandwidth cap (MiB/s), and for
    block migration the disks to copy (as nova's migrate_disks)."""
    params: dict[str, Any] = {
        libvirt.VIR_MIGRATE_PARAM_URI: migration.migrate_uri(target.address),
        libvirt.VIR_MIGRATE_PARAM_DEST_XML: xml,
        libvirt.VIR_MIGRATE_PARAM_PERSIST_XML: xml,
    }
    if bandwidth_mib > 0:
        params[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = bandwidth_mib
    if target.block_migration and disks:
        params[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = disks
    return params


def progress_of(stats: dict[str, Any], elapsed_s: float) -> MigrationProgress:
    """A jobStats() answer as progress (absent counters, before QEMU reports any, are 0)."""
    return MigrationProgress(
        elapsed_s=elapsed_s,
        memory_total_bytes=int(stats.get("memory_total", 0)),
        memory_processed_bytes=int(stats.get("memory_processed", 0)),
        memory_remaining_bytes=int(stats.get("memory_remaining", 0)),
    )


class LibvirtLiveMigration(LiveMigration):
    """Started by `start()`; the monitor follows nova's _live_migration_monitor: progress,
    downtime steps, and the completion timeout's action."""

    def __init__(
        self,
        dom: libvirt.virDomain,
        dest_uri: str,
        params: dict[str, Any],
        flags: int,
        settings: MigrationSettings,
        gb: float,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        self._dom = dom
        self._uuid = dom.UUIDString()
        self._dest_uri = dest_uri
        self._params = params
        self._flags = flags
        self._settings = settings
        self._steps = migration.downtime_steps(settings, gb)
        self._timeout = migration.completion_timeout(settings, gb)
        self._on_progress = on_progress
        self._op_done = threading.Event()
        self._op_error: libvirt.libvirtError | None = None
        self._done = threading.Event()
        self._result: MigrationResult | None = None
        self._lock = threading.Lock()
        self._abort_requested = False
        self._timed_out = False
        self._post_copy_running = False
        self._paused_by_us = False
        self._last: MigrationProgress | None = None
        self._started = time.monotonic()

    def start(self) -> None:
        threading.Thread(target=self._operation, name=f"migrate-{self._uuid}", daemon=True).start()
        threading.Thread(target=self._monitor, name=f"monitor-{self._uuid}", daemon=True).start()

    # -- LiveMigration ----------------------------------------------------------------------

    def force_complete(self) -> None:
        if self._op_done.is_set():
            return
        if self._flags & libvirt.VIR_MIGRATE_POSTCOPY:
            with self._lock:
                if self._post_copy_running:
                    return
                self._post_copy_running = True
            LOG.info("migration of %s: switching to post-copy", self._uuid)
            self._quietly("switching to post-copy", self._dom.migrateStartPostCopy, 0)
        else:
            LOG.info("migration of %s: pausing the guest so the migration completes", self._uuid)
            with self._lock:
                self._paused_by_us = True
            self._quietly("pausing the guest", self._dom.suspend)

    def abort(self) -> None:
        with self._lock:
            if self._post_copy_running:
                LOG.warning("migration of %s runs in post-copy: it cannot be aborted", self._uuid)
                return
            self._abort_requested = True
        self._abort_job()

    def wait(self, timeout: float | None = None) -> MigrationResult | None:
        return self._result if self._done.wait(timeout) else None

    # -- threads ----------------------------------------------------------------------------

    def _operation(self) -> None:
        try:
            # Blocks until libvirt finished the migration (or failed it): hence its own thread.
            self._dom.migrateToURI3(self._dest_uri, self._params, self._flags)
        except libvirt.libvirtError as exc:
            self._op_error = exc
        except Exception as exc:  # never leave the monitor waiting forever
            LOG.exception("migration of %s raised", self._uuid)
            self._op_error = libvirt.libvirtError(str(exc))
        finally:
            self._op_done.set()

    def _monitor(self) -> None:
        try:
            self._follow()
        except Exception:  # never leave wait() hanging: the operation decides the end
            LOG.exception("monitor of the migration of %s failed", self._uuid)
            self._op_done.wait()
            if self._result is None:
                self._result = self._outcome()
        finally:
            self._done.set()

    def _follow(self) -> None:
        next_step = 0
        while not self._op_done.wait(POLL_SECONDS):
            elapsed = time.monotonic() - self._started
            self._sample(elapsed)
            while next_step < len(self._steps) and elapsed >= self._steps[next_step][0]:
                downtime = self._steps[next_step][1]
                LOG.debug("migration of %s: max downtime %d ms", self._uuid, downtime)
                self._quietly("setting the max downtime", self._dom.migrateSetMaxDowntime, downtime)
                next_step += 1
            if not self._timed_out and migration.should_trigger_timeout_action(
                elapsed, self._timeout, self._post_copy_running
            ):
                self._timed_out = True
                self._on_timeout()
        self._result = self._outcome()
        if self._result.outcome is not MigrationOutcome.COMPLETED and self._paused_by_us:
            # force_complete paused it here and the migration did not finish: it runs on.
            LOG.info("migration of %s ended; resuming the guest paused to force it", self._uuid)
            self._quietly("resuming the guest", self._dom.resume, after_end=True)
        LOG.info(
            "migration of %s: %s %s", self._uuid, self._result.outcome.value, self._result.reason
        )

    def _on_timeout(self) -> None:
        LOG.warning(
            "migration of %s did not complete in %d s (live_migration_completion_timeout); %s",
            self._uuid,
            self._timeout,
            self._settings.timeout_action,
        )
        if self._settings.timeout_action == "force_complete":
            self.force_complete()
        else:
            self._abort_job()

    def _sample(self, elapsed: float) -> None:
        try:
            stats = self._dom.jobStats(0)
        except libvirt.libvirtError:
            return  # the job just ended; the operation thread has the outcome
        if stats.get("type", libvirt.VIR_DOMAIN_JOB_NONE) == libvirt.VIR_DOMAIN_JOB_NONE:
            return
        self._last = progress_of(stats, elapsed)
        if self._on_progress is not None:
            try:
                self._on_progress(self._last)
            except Exception:  # a report that fails must not stop the monitor
                LOG.exception("progress callback of migration %s failed", self._uuid)

    def _outcome(self) -> MigrationResult:
        error = self._op_error
        if error is None:
            last = self._last
            final = MigrationProgress(
                elapsed_s=time.monotonic() - self._started,
                memory_total_bytes=last.memory_total_bytes if last else 0,
                memory_processed_bytes=last.memory_total_bytes if last else 0,
                memory_remaining_bytes=0,
            )
            return MigrationResult(MigrationOutcome.COMPLETED, progress=final)
        message = error.get_error_message() or str(error)
        if self._abort_requested:
            return MigrationResult(MigrationOutcome.CANCELLED, message, self._last)
        if self._timed_out and self._settings.timeout_action == "abort":
            message = (
                f"live migration did not complete in {self._timeout} s "
                f"([libvirt] live_migration_completion_timeout) and was aborted: {message}"
            )
        return MigrationResult(MigrationOutcome.FAILED, message, self._last)

    def _abort_job(self) -> None:
        self._quietly("aborting the migration", self._dom.abortJob)

    def _quietly(self, action: str, call: Any, *args: Any, after_end: bool = False) -> None:
        """A control call racing the migration's end is no error worth raising."""
        try:
            with translated(f"{action} of guest {self._uuid}"):
                call(*args)
        except FilememError as exc:  # e.g. GuestNotFound: the domain just left (it succeeded)
            if self._op_done.is_set() and not after_end:
                return
            LOG.warning("%s", exc)


def start_live_migration(
    dom: libvirt.virDomain,
    target: MigrationTarget,
    source_dir: Path,
    settings: MigrationSettings,
    on_progress: ProgressCallback | None = None,
) -> LibvirtLiveMigration:
    """Refuse what cannot migrate yet, rewrite the migratable XML for the target, start."""
    uuid = dom.UUIDString()
    with translated(f"reading the definition of guest {uuid}"):
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE)
    disks = _local_disks(xml)
    if disks and not target.block_migration:
        raise MigrationNotSupported(NEEDS_BLOCK_MIGRATION)
    refusal = migration.memory_source_change(xml, target.file_backed_memory_mb)
    if refusal is not None:
        raise MigrationNotSupported(refusal)
    xml = destination_xml(xml, target, source_dir)
    with translated(f"reading the memory size of guest {uuid}"):
        memory_mb = dom.maxMemory() // 1024
    running = LibvirtLiveMigration(
        dom,
        migration.destination_uri(settings.scheme, target.address),
        migration_params(target, xml, settings.bandwidth_mib, disks),
        migration_flags(settings, target.block_migration),
        settings,
        migration.data_gb(memory_mb),
        on_progress,
    )
    running.start()
    return running


def destination_xml(xml: str, target: MigrationTarget, source_dir: Path) -> str:
    """The migratable XML as the destination must define it."""
    xml = migration.update_memory_backing_xml(xml, target.file_backed_memory_mb)
    return migration.update_instance_paths_xml(xml, source_dir, target.instance_dir or source_dir)


NEEDS_BLOCK_MIGRATION = (
    "the guest boots from a disk image whose copy-on-write overlay is local to this host: it "
    "needs block migration (block_migration true)"
)


def _local_disks(xml: str) -> list[str]:
    """Target devices of the writable disks (our overlays) that block migration copies."""
    devices = ET.fromstring(xml).find("devices")  # noqa: S314 (libvirt's own XML)
    disks = [] if devices is None else devices.findall("disk")
    return [
        target.get("dev", "")
        for disk in disks
        if disk.find("readonly") is None and (target := disk.find("target")) is not None
    ]


def guest_job(dom: libvirt.virDomain, uuid: str) -> GuestJob:
    """virDomainGetJobInfo (bounded or unbounded = active) and virDomainIsPersistent."""
    with translated(f"reading the job of guest {uuid}"):
        persistent = bool(dom.isPersistent())
        try:
            job = dom.jobInfo()[0]
        except libvirt.libvirtError as exc:
            job = _job_refused(exc)
    active = job in (libvirt.VIR_DOMAIN_JOB_BOUNDED, libvirt.VIR_DOMAIN_JOB_UNBOUNDED)
    return GuestJob(active=active, persistent=persistent)


def _job_refused(exc: libvirt.libvirtError) -> int:
    """The job a refused virDomainGetJobInfo implies, or the error when it implies none."""
    code = exc.get_error_code()
    if code == libvirt.VIR_ERR_OPERATION_INVALID:
        # Not running: stopped, or it left by live migration a moment ago. Seen in a
        # reconcile pass racing the end of a migration; it has no job either way.
        return int(libvirt.VIR_DOMAIN_JOB_NONE)
    if code == libvirt.VIR_ERR_OPERATION_UNSUPPORTED:
        # "migration statistics are available only on the source host": the destination of
        # an incoming migration, whose job runs (failing here stalled the agent's passes).
        return int(libvirt.VIR_DOMAIN_JOB_UNBOUNDED)
    raise exc
