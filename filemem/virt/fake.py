"""FakeDriver: an in-memory HypervisorDriver for fast tests of the agent, manager and tracker.

It runs the real guest-config policy (so huge pages on a file-backed host are refused exactly as
on libvirt) and keeps guests in a dict. Memory files are sparse files under `backing_dir`, laid
out as libvirt lays them out, so the tracker's store inspection reads them. Tests steer it with
`fail_next` (inject an error into the next call of a method), `unavailable` (every call raises
HypervisorUnavailable, as when libvirtd is down) and `set_power` (a guest changing on its own).
A suspended guest's managed save image is a sparse file at `save_path(uuid)`; `nmis` lists the
NMIs injected.
It replaces no real-libvirt test: those stay in tests/functional.
"""

from __future__ import annotations

import contextlib
import itertools
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from filemem.backing import store
from filemem.common.guests import (
    Flavor,
    GuestInfo,
    GuestRequest,
    HostFacts,
    Image,
    Nic,
    PowerState,
    validate_name,
    validate_uuid,
)
from filemem.common.resources import MIB
from filemem.common.versions import Version, discard_supported
from filemem.exceptions import (
    GuestAlreadyExists,
    GuestNotFound,
    HypervisorError,
    HypervisorUnavailable,
    InsufficientBackingStore,
    InvalidInput,
    MigrationNotSupported,
)
from filemem.virt import guest_config
from filemem.virt.driver import GuestJob, HypervisorDriver, LiveMigration, MigrationTarget
from filemem.virt.fake_migration import FakeLiveMigration
from filemem.virt.migration import (
    ProgressCallback,
)


@dataclass
class _Guest:
    info: GuestInfo
    flavor: Flavor
    image: Image
    nics: tuple[Nic, ...] = ()


@dataclass
class FakeDriver(HypervisorDriver):
    """`capacity_mb` bounds the file-backed guests' memory the fake store holds (None: no bound)."""

    state_path: Path
    backing_dir: Path | None = None
    file_backed_memory_mb: int = 0
    allocation_mode: Literal["immediate", "ondemand"] = "immediate"
    libvirt_version: Version = (9, 0, 0)
    qemu_version: Version = (7, 2, 0)
    capacity_mb: int | None = None
    unavailable: bool = False
    calls: list[tuple[str, str]] = field(default_factory=list)
    nmis: list[str] = field(default_factory=list)  # uuids, one per NMI injected
    _guests: dict[str, _Guest] = field(default_factory=dict)
    _failures: dict[str, list[Exception]] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    # Live migration: other fakes by migration address; migrations started, by guest uuid;
    # uuids with a job (incoming ones too, set by tests); whether migrations end on their own.
    peers: dict[str, FakeDriver] = field(default_factory=dict)
    migrations: dict[str, FakeLiveMigration] = field(default_factory=dict)
    jobs: set[str] = field(default_factory=set)
    transient: set[str] = field(default_factory=set)
    complete_migrations: bool = False

    # -- test controls ----------------------------------------------------------------------

    def fail_next(self, method: str, error: Exception) -> None:
        """The next call of `method` raises `error` (queued: call again for several)."""
        self._failures.setdefault(method, []).append(error)

    def set_power(self, uuid: str, power: PowerState) -> None:
        """The guest changes state by itself (powers off, crashes) behind filemem's back."""
        guest = self._guests[uuid]
        alive = power in (PowerState.RUNNING, PowerState.PAUSED)
        if not alive:
            self._drop_memory_file(guest.info)
        guest.info = replace(
            guest.info,
            power_state=power,
            domain_id=guest.info.domain_id if alive else None,
            memory_file=None,
        )

    def _enter(self, method: str, uuid: str = "") -> None:
        self.calls.append((method, uuid))
        if self.unavailable:
            raise HypervisorUnavailable("connecting to fake:///", "the fake hypervisor is down")
        pending = self._failures.get(method)
        if pending:
            raise pending.pop(0)

    # -- host facts -------------------------------------------------------------------------

    @property
    def connection_uri(self) -> str:
        return "fake:///"

    def versions(self) -> tuple[Version, Version]:
        self._enter("versions")
        return self.libvirt_version, self.qemu_version

    def host_facts(self) -> HostFacts:
        lib, qemu = self.versions()
        return HostFacts(
            virt_type="qemu",
            file_backed_memory_mb=self.file_backed_memory_mb,
            discard_supported=discard_supported(lib, qemu),
            allocation_mode=self.allocation_mode,
        )

    def qemu_conf_text(self) -> str:
        return f'memory_backing_dir = "{self.backing_dir}"\n' if self.backing_dir else ""

    def memory_backing_dir(self) -> Path:
        return store.effective_memory_backing_dir(self.qemu_conf_text())

    def instance_dir(self, uuid: str) -> Path:
        return self.state_path / "instances" / validate_uuid(uuid)

    # -- lifecycle --------------------------------------------------------------------------

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
        name, uuid = validate_name(name), validate_uuid(uuid)
        self._enter("spawn", uuid)
        if uuid in self._guests or any(g.info.name == name for g in self._guests.values()):
            raise GuestAlreadyExists(f"a guest with uuid {uuid} or name {name} is defined")
        host = self._build(name, uuid, flavor, image, owner, nics)
        workdir = self.instance_dir(uuid)
        info = GuestInfo(
            uuid=uuid,
            name=name,
            domain_id=None,
            power_state=PowerState.SHUTDOWN,
            memory_mb=flavor.memory_mb,
            vcpus=flavor.vcpus,
            file_backed=host.file_backed,
            owner=owner,
        )
        self._guests[uuid] = _Guest(info, flavor, image, tuple(nics))
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            return self._start(uuid)
        except BaseException:
            del self._guests[uuid]
            shutil.rmtree(workdir, ignore_errors=True)
            raise

    def power_off(self, uuid: str, timeout: float | None = None) -> bool:
        self._enter("power_off", uuid)
        guest = self._get(uuid)
        if guest.info.power_state in (PowerState.RUNNING, PowerState.PAUSED):
            self.set_power(uuid, PowerState.SHUTDOWN)
        return True

    def power_on(self, uuid: str) -> GuestInfo:
        self._enter("power_on", uuid)
        if self._get(uuid).info.power_state in (PowerState.RUNNING, PowerState.PAUSED):
            return self._observed(self._get(uuid))
        return self._start(uuid)

    def reboot(self, uuid: str, hard: bool = False) -> GuestInfo:
        guest = self._get(uuid)
        if hard and guest.info.managed_save:
            self.save_path(uuid).unlink(missing_ok=True)
            guest.info = replace(guest.info, managed_save=False)
        return super().reboot(uuid, hard)

    def destroy(self, uuid: str) -> bool:
        uuid = validate_uuid(uuid)
        self._enter("destroy", uuid)
        guest = self._guests.pop(uuid, None)
        if guest is not None:
            self._drop_memory_file(guest.info)
        self.save_path(uuid).unlink(missing_ok=True)
        shutil.rmtree(self.instance_dir(uuid), ignore_errors=True)
        return guest is not None

    # -- server actions ---------------------------------------------------------------------

    def pause(self, uuid: str) -> GuestInfo:
        self._enter("pause", uuid)
        guest = self._get(uuid)
        if guest.info.power_state == PowerState.RUNNING:
            guest.info = replace(guest.info, power_state=PowerState.PAUSED)
        elif guest.info.power_state != PowerState.PAUSED:
            raise HypervisorError(f"pausing guest {uuid}", "Requested operation is not valid")
        return self._observed(guest)

    def unpause(self, uuid: str) -> GuestInfo:
        self._enter("unpause", uuid)
        guest = self._get(uuid)
        if guest.info.power_state == PowerState.PAUSED:
            guest.info = replace(guest.info, power_state=PowerState.RUNNING)
        elif guest.info.power_state != PowerState.RUNNING:
            raise HypervisorError(f"unpausing guest {uuid}", "the guest is not running")
        return self._observed(guest)

    def suspend(self, uuid: str) -> GuestInfo:
        """The managed save image is `save_path(uuid)`, a sparse file of the guest's size."""
        self._enter("suspend", uuid)
        guest = self._get(uuid)
        if guest.info.power_state not in (PowerState.RUNNING, PowerState.PAUSED):
            if guest.info.managed_save:
                return self._observed(guest)
            raise HypervisorError(f"suspending guest {uuid}", "the guest is not running")
        path = self.save_path(uuid)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as handle:
            handle.truncate(guest.info.memory_mb * MIB)
        self.set_power(uuid, PowerState.SHUTDOWN)
        guest.info = replace(guest.info, managed_save=True)
        return self._observed(guest)

    def resume(self, uuid: str) -> GuestInfo:
        self._enter("resume", uuid)
        guest = self._get(uuid)
        if guest.info.power_state in (PowerState.RUNNING, PowerState.PAUSED):
            return self._observed(guest)
        return self._start(uuid)

    def inject_nmi(self, uuid: str) -> None:
        self._enter("inject_nmi", uuid)
        if self._get(uuid).info.power_state not in (PowerState.RUNNING, PowerState.PAUSED):
            raise HypervisorError(f"injecting an NMI into guest {uuid}", "the guest is not running")
        self.nmis.append(uuid)

    def snapshot_disk(self, uuid: str, dest: Path) -> None:
        self._enter("snapshot_disk", uuid)
        if self._get(uuid).image.kind != "disk":
            raise InvalidInput(f"guest {uuid} boots a kernel and has no disk to snapshot")
        dest.write_bytes(f"fake disk of {uuid}\n".encode())

    def resize(
        self, uuid: str, flavor: Flavor, image: Image, start: bool, *, nics: Sequence[Nic] = ()
    ) -> GuestInfo:
        self._enter("resize", uuid)
        guest = self._get(uuid)
        if guest.info.managed_save:
            raise HypervisorError(
                f"resizing guest {uuid}", "the guest is suspended; resume it first"
            )
        self._build(
            guest.info.name, guest.info.uuid, flavor, image, guest.info.owner or "api", nics
        )
        if guest.info.power_state != PowerState.SHUTDOWN:
            self.set_power(uuid, PowerState.SHUTDOWN)
        guest.nics = tuple(nics)
        old_info, old_flavor = guest.info, guest.flavor
        guest.flavor = flavor
        guest.info = replace(guest.info, memory_mb=flavor.memory_mb, vcpus=flavor.vcpus)
        if not start:
            return self._observed(guest)
        try:
            return self._start(uuid)
        except InsufficientBackingStore:
            guest.info, guest.flavor = old_info, old_flavor  # the old definition, started again
            with contextlib.suppress(InsufficientBackingStore):
                self._start(uuid)
            raise

    def rebuild(
        self, uuid: str, flavor: Flavor, image: Image, start: bool, *, nics: Sequence[Nic] = ()
    ) -> GuestInfo:
        self._enter("rebuild", uuid)
        guest = self._get(uuid)
        self._build(
            guest.info.name, guest.info.uuid, flavor, image, guest.info.owner or "api", nics
        )
        if guest.info.power_state != PowerState.SHUTDOWN:
            self.set_power(uuid, PowerState.SHUTDOWN)
        guest.nics = tuple(nics)
        self.save_path(uuid).unlink(missing_ok=True)
        guest.flavor, guest.image = flavor, image
        guest.info = replace(
            guest.info, memory_mb=flavor.memory_mb, vcpus=flavor.vcpus, managed_save=False
        )
        return self._start(uuid) if start else self._observed(guest)

    def save_path(self, uuid: str) -> Path:
        """Where the fake keeps a suspended guest's managed save image (libvirt's save dir)."""
        return self.state_path / "save" / f"{validate_uuid(uuid)}.save"

    def flavor_of(self, uuid: str) -> Flavor:
        return self._get(uuid).flavor

    def image_of(self, uuid: str) -> Image:
        return self._get(uuid).image

    def nics_of(self, uuid: str) -> tuple[Nic, ...]:
        return self._get(uuid).nics

    # -- live migration -------------------------------------------------------------------

    def live_migrate(
        self, uuid: str, target: MigrationTarget, on_progress: ProgressCallback | None = None
    ) -> LiveMigration:
        """Steered by the test through the returned FakeLiveMigration (or ended at once with
        `complete_migrations`); the guest moves to `peers[target.address]` on completion."""
        self._enter("live_migrate", uuid)
        guest = self._get(uuid)
        if guest.info.power_state not in (PowerState.RUNNING, PowerState.PAUSED):
            raise HypervisorError(f"live-migrating guest {uuid}", "the guest is not running")
        if guest.image.kind == "disk" and not target.block_migration:
            raise MigrationNotSupported(
                "the guest boots from a disk image: it needs block migration"
            )
        running = FakeLiveMigration(self, uuid, target, on_progress)
        self.migrations[uuid] = running
        self.jobs.add(uuid)
        if self.complete_migrations:
            running.report(guest.info.memory_mb * MIB)
            running.complete()
        return running

    def prepare_incoming(self, uuid: str, image: Image | None = None) -> Path:
        """The instance directory; a disk image's overlay is an empty file named as libvirt's."""
        self._enter("prepare_incoming", uuid)
        workdir = self.instance_dir(uuid)
        workdir.mkdir(parents=True, exist_ok=True)
        if image is not None and image.kind == "disk":
            (workdir / "disk.qcow2").touch()
        return workdir

    def guest_job(self, uuid: str) -> GuestJob:
        self._enter("guest_job", uuid)
        self._get(uuid)
        return GuestJob(active=uuid in self.jobs, persistent=uuid not in self.transient)

    def _migrate_out(self, uuid: str, target: MigrationTarget) -> None:
        """The guest leaves (UNDEFINE_SOURCE) and runs on the peer, file-backed or not."""
        guest = self._guests.pop(uuid)
        self._drop_memory_file(guest.info)
        self.jobs.discard(uuid)
        peer = self.peers.get(target.address)
        if peer is None:
            return
        info = replace(
            guest.info,
            file_backed=target.file_backed_memory_mb > 0,
            domain_id=next(peer._ids),
            memory_file=None,
        )
        peer._guests[uuid] = _Guest(info, guest.flavor, guest.image)
        peer._make_memory_file(info)

    # -- observation ------------------------------------------------------------------------

    def list_guests(self) -> list[GuestInfo]:
        self._enter("list_guests")
        return sorted((self._observed(g) for g in self._guests.values()), key=lambda i: i.name)

    def get_guest(self, uuid: str) -> GuestInfo:
        self._enter("get_guest", uuid)
        return self._observed(self._get(uuid))

    # -- internals --------------------------------------------------------------------------

    def _build(
        self,
        name: str,
        uuid: str,
        flavor: Flavor,
        image: Image,
        owner: str,
        nics: Sequence[Nic] = (),
    ) -> HostFacts:
        """The real policy: refusals (huge pages on a file-backed host...) match libvirt's."""
        host = self.host_facts()
        guest_config.build_domain(
            GuestRequest(
                name=name,
                uuid=uuid,
                flavor=flavor,
                image=image,
                console_log=self.instance_dir(uuid) / "console.log",
                owner=owner,
                nics=tuple(nics),
                overlay=self.instance_dir(uuid) / "disk.qcow2" if image.kind == "disk" else None,
            ),
            host,
        )
        return host

    def _get(self, uuid: str) -> _Guest:
        try:
            return self._guests[validate_uuid(uuid)]
        except KeyError:
            raise GuestNotFound(f"no guest with uuid {uuid} on this host") from None

    def _start(self, uuid: str) -> GuestInfo:
        guest = self._get(uuid)
        if guest.info.file_backed:
            self._guard_capacity(guest.info.memory_mb)
        guest.info = replace(
            guest.info,
            power_state=PowerState.RUNNING,
            domain_id=next(self._ids),
            managed_save=False,
        )
        self._make_memory_file(guest.info)
        self.save_path(uuid).unlink(missing_ok=True)  # restored: libvirt deletes the image
        return self._observed(guest)

    def _guard_capacity(self, memory_mb: int) -> None:
        if self.capacity_mb is None:
            return
        used = sum(
            g.info.memory_mb
            for g in self._guests.values()
            if g.info.file_backed and g.info.power_state in (PowerState.RUNNING, PowerState.PAUSED)
        )
        if used + memory_mb > self.capacity_mb:
            raise InsufficientBackingStore(
                f"the fake store holds {self.capacity_mb} MiB; {used} MiB are used by running "
                f"guests, {memory_mb} MiB more do not fit"
            )

    def _memory_dir(self, info: GuestInfo) -> Path | None:
        if not info.file_backed or self.backing_dir is None or info.domain_id is None:
            return None
        return self.memory_backing_dir() / f"{info.domain_id}-{info.name}"

    def _make_memory_file(self, info: GuestInfo) -> None:
        directory = self._memory_dir(info)
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)
            with open(directory / "pc.ram", "wb") as handle:
                handle.truncate(info.memory_mb * MIB)  # sparse: nominal size, nothing allocated

    def _drop_memory_file(self, info: GuestInfo) -> None:
        directory = self._memory_dir(info)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)

    def _observed(self, guest: _Guest) -> GuestInfo:
        info = guest.info
        if info.domain_id is None or self.backing_dir is None or not info.file_backed:
            return info
        return replace(
            info, memory_file=store.guest_memory_file(self.memory_backing_dir(), info.domain_id)
        )
