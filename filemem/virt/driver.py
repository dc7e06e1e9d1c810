"""The hypervisor driver interface: what the compute service needs of a host, with its errors.

Every caller (agent, plan executor, manager, tracker, host check) is typed against
HypervisorDriver; LibvirtDriver implements it on libvirt, FakeDriver (filemem.virt.fake) in
memory for fast tests. Errors every method may raise, besides those it names:

- HypervisorUnavailable: the hypervisor cannot be reached (transient: callers retry later).
- HypervisorError: the hypervisor refused, with its own message (not retried blindly).
- GuestNotFound: `uuid` names no guest of this host.
- InvalidInput: a malformed uuid or name.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from filemem.common.guests import Flavor, GuestInfo, HostFacts, Image, Nic
from filemem.common.versions import Version
from filemem.virt.migration import MigrationResult, ProgressCallback


@dataclass(frozen=True)
class MigrationTarget:
    """Where a live migration goes: the destination's migration address (its libvirtd and
    QEMU), its file-backed memory (0 = none), whether disks are copied (block migration), and
    the guest's instance directory there (None: the same path as here, as nova assumes one
    instances_path on every host)."""

    address: str
    file_backed_memory_mb: int
    block_migration: bool = False
    instance_dir: Path | None = None


@dataclass(frozen=True)
class GuestJob:
    """A guest's hypervisor job (a migration in or out) and whether its definition persists
    (an incoming guest is transient until the migration finished)."""

    active: bool
    persistent: bool


class LiveMigration(abc.ABC):
    """One outgoing live migration running in the background (started by
    HypervisorDriver.live_migrate). Its methods never raise for a migration that already
    ended: forcing or aborting then does nothing."""

    @abc.abstractmethod
    def force_complete(self) -> None:
        """nova's force_complete: switch to post-copy when it is permitted, else pause the
        guest so the remaining memory converges."""

    @abc.abstractmethod
    def abort(self) -> None:
        """Cancel the migration (virDomainAbortJob); the guest keeps running here and the
        result is CANCELLED."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> MigrationResult | None:
        """The result once the migration ended; None when `timeout` s passed first."""


class HypervisorDriver(abc.ABC):
    """Guests on one host: lifecycle, observation, and the facts guest config depends on."""

    # -- host facts -------------------------------------------------------------------------

    @property
    @abc.abstractmethod
    def connection_uri(self) -> str:
        """Where the hypervisor is reached (e.g. qemu:///system), for messages and reports."""

    @abc.abstractmethod
    def versions(self) -> tuple[Version, Version]:
        """(libvirt version, QEMU version) of the running hypervisor."""

    @abc.abstractmethod
    def host_facts(self) -> HostFacts:
        """What guest config needs to know about this host, read from the live hypervisor."""

    @abc.abstractmethod
    def qemu_conf_text(self) -> str:
        """The text of qemu.conf ("" when it does not exist); raises ConfigError if unreadable."""

    @abc.abstractmethod
    def memory_backing_dir(self) -> Path:
        """The directory QEMU puts guests' memory files in (libvirt's effective one)."""

    @abc.abstractmethod
    def instance_dir(self, uuid: str) -> Path:
        """The guest's own directory under state_path (console log, disk overlay).

        Its existence is how a host tells its guests from other tools' on a shared hypervisor.
        """

    def console_log(self, uuid: str) -> Path:
        """The file the guest's serial console is written to."""
        return self.instance_dir(uuid) / "console.log"

    # -- lifecycle --------------------------------------------------------------------------

    @abc.abstractmethod
    def spawn(
        self,
        name: str,
        uuid: str,
        flavor: Flavor,
        image: Image,
        owner: str = "api",
        *,
        nics: Sequence[Nic] = (),
    ) -> GuestInfo:
        """Define and start a guest with `nics` (in order: the first is eth0); on any failure
        nothing of it is left behind.

        Raises InvalidGuestConfig (it cannot run here, e.g. huge pages on a file-backed host),
        InsufficientBackingStore (the store cannot hold its memory now), GuestAlreadyExists,
        ConfigError (state_path unusable by QEMU).
        """

    @abc.abstractmethod
    def power_off(self, uuid: str, timeout: float | None = None) -> bool:
        """Graceful shutdown, destroyed after `timeout` s (None: the configured default).

        True when the guest stopped by itself (or was already off), False when destroyed.
        """

    @abc.abstractmethod
    def power_on(self, uuid: str) -> GuestInfo:
        """Start a stopped guest; a running one is left alone. Raises InsufficientBackingStore."""

    def reboot(self, uuid: str, hard: bool = False) -> GuestInfo:
        """Soft: graceful stop then start; hard: destroy then start (a suspended guest's saved
        state is discarded: it boots afresh)."""
        self.power_off(uuid, timeout=0 if hard else None)
        return self.power_on(uuid)

    @abc.abstractmethod
    def destroy(self, uuid: str) -> bool:
        """Stop, undefine and remove every file of the guest (its memory file, its managed save
        image, its instance directory); False when it did not exist.

        Never raises GuestNotFound: destroying twice is how a retried delete converges.
        """

    # -- server actions ---------------------------------------------------------------------

    @abc.abstractmethod
    def pause(self, uuid: str) -> GuestInfo:
        """Freeze the guest's vCPUs; QEMU and its memory file stay. A paused guest is left
        alone; one that is not running raises HypervisorError."""

    @abc.abstractmethod
    def unpause(self, uuid: str) -> GuestInfo:
        """Let a paused guest run again; a running one is left alone. One that is not running
        raises HypervisorError."""

    @abc.abstractmethod
    def suspend(self, uuid: str) -> GuestInfo:
        """Save the memory and device state of a running or paused guest to the hypervisor's
        managed save image and stop it (its memory file is then gone; the image holds the
        guest's memory). An already suspended guest is left alone; a guest that is shut off
        without an image raises HypervisorError."""

    @abc.abstractmethod
    def resume(self, uuid: str) -> GuestInfo:
        """Start a suspended guest from its managed save image, which is removed once the guest
        runs; a guest without one boots afresh, a running one is left alone. The capacity guard
        of power_on applies: raises InsufficientBackingStore."""

    @abc.abstractmethod
    def inject_nmi(self, uuid: str) -> None:
        """Send a non-maskable interrupt to a running guest (nova's trigger_crash_dump: a guest
        kernel set up for it panics and dumps). Raises HypervisorError when the guest is not
        running or the hypervisor cannot inject one."""

    @abc.abstractmethod
    def resize(
        self, uuid: str, flavor: Flavor, image: Image, start: bool, *, nics: Sequence[Nic] = ()
    ) -> GuestInfo:
        """Redefine the guest with `flavor` (memory, vCPUs) and `nics`, keeping its name, instance
        directory, console log and disk overlay; a running guest is shut down gracefully first
        (destroyed after the configured timeout). With `start` it is started again under the
        capacity guard; when the new size does not fit, the previous definition is put back
        (and started) and InsufficientBackingStore raised. Raises InvalidGuestConfig before
        anything changes when `flavor` cannot run here (huge pages on a file-backed host), and
        HypervisorError for a suspended guest (its saved memory has the old size)."""

    @abc.abstractmethod
    def rebuild(
        self, uuid: str, flavor: Flavor, image: Image, start: bool, *, nics: Sequence[Nic] = ()
    ) -> GuestInfo:
        """Stop the guest (gracefully, then destroyed), drop its managed save image and disk
        overlay, and define it again from `image` and `flavor` with the same uuid, name and
        owner (a new overlay from the new image); with `start` it boots under the capacity
        guard, so its memory file is a new one. Raises InvalidGuestConfig before anything
        changes, InsufficientBackingStore, InvalidInput (a disk image that does not exist).
        `nics` are the guest's (the same ports: a rebuild keeps its addresses)."""

    def snapshot_disk(self, uuid: str, dest: Path) -> None:
        """Write the guest's whole disk (overlay and base) to `dest` as one qcow2 image, the
        guest paused meanwhile if it runs (nova's createImage without a guest agent). Raises
        InvalidInput for a guest without a disk (a kernel boot), HypervisorError."""
        raise NotImplementedError(f"{type(self).__name__} cannot snapshot disks")

    # -- live migration -------------------------------------------------------------------

    @abc.abstractmethod
    def live_migrate(
        self, uuid: str, target: MigrationTarget, on_progress: ProgressCallback | None = None
    ) -> LiveMigration:
        """Start a peer-to-peer live migration of a running guest to `target` and return at
        once; the domain is defined there with its memory backing rewritten for the target's
        file-backed memory, and undefined here when it succeeds. `on_progress` is called from
        the monitor about every 0.5 s.

        Raises MigrationNotSupported (a disk-image guest without block migration, or a
        destination backing memory differently), HypervisorError (the guest is not running,
        or libvirt refused to start).
        """

    @abc.abstractmethod
    def prepare_incoming(self, uuid: str, image: Image | None = None) -> Path:
        """What the destination needs before a guest migrates in: its instance directory
        (console log path) under state_path and, for a guest booted from a disk `image`, an
        empty copy-on-write overlay of that image for block migration to fill. Idempotent;
        returns the directory. Raises ConfigError (state_path unusable by QEMU), InvalidInput
        (the image is not on this host), HypervisorError (qemu-img failed)."""

    @abc.abstractmethod
    def guest_job(self, uuid: str) -> GuestJob:
        """The guest's job and persistence, read now."""

    # -- observation ------------------------------------------------------------------------

    @abc.abstractmethod
    def list_guests(self) -> list[GuestInfo]:
        """Guests filemem defined on this hypervisor (sorted by name), with power state and
        memory-file usage; other tools' guests are left out."""

    @abc.abstractmethod
    def get_guest(self, uuid: str) -> GuestInfo:
        """One guest, by uuid."""
