"""libvirt driver: guest lifecycle and server actions (pause, resize, rebuild, ...) on one host."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import libvirt

from filemem.backing import capacity, store
from filemem.common import images
from filemem.common.guests import (
    Flavor,
    GuestInfo,
    GuestRequest,
    HostFacts,
    Image,
    Nic,
    validate_name,
    validate_uuid,
)
from filemem.common.versions import discard_supported, parse_version
from filemem.exceptions import (
    FilememError,
    GuestAlreadyExists,
    GuestNotFound,
    HypervisorError,
    InsufficientBackingStore,
    InvalidInput,
)
from filemem.virt import guest_config
from filemem.virt.driver import GuestJob, HypervisorDriver, LiveMigration, MigrationTarget
from filemem.virt.libvirt import (
    guest_partition,
    guest_state,
    instance_files,
    live_migration,
    partition,
    snapshot,
)
from filemem.virt.libvirt.connection import Connection, EventCallback
from filemem.virt.libvirt.errors import translated
from filemem.virt.libvirt.guest_state import is_active as _is_active
from filemem.virt.libvirt.guest_state import owner_of as _owner
from filemem.virt.migration import MigrationSettings, ProgressCallback
from filemem.virt.xml.domain import Domain

LOG = logging.getLogger(__name__)

_UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
)


@dataclass(frozen=True)
class DriverSettings:
    """The configuration the driver needs, taken from oslo.config by `from_conf`."""

    connection_uri: str
    virt_type: Literal["kvm", "qemu"]
    file_backed_memory_mb: int
    allocation_mode: Literal["immediate", "ondemand"]
    headroom_mb: int
    state_path: Path
    qemu_conf_path: Path
    shutdown_timeout: float
    guest_partition: str = ""  # "" = libvirt's default partition, /machine
    guest_memory_limit_mb: int = 0  # the partition's memory limit; 0 = none
    migration: MigrationSettings = field(default_factory=MigrationSettings)


class LibvirtDriver(HypervisorDriver):
    """HypervisorDriver on libvirt; filemem.virt.driver documents each method's errors."""

    def __init__(self, settings: DriverSettings, on_event: EventCallback | None = None) -> None:
        self.settings = settings
        self.connection = Connection(settings.connection_uri or "qemu:///system", on_event)

    @property
    def connection_uri(self) -> str:
        """The libvirt URI ([libvirt] connection_uri, default qemu:///system)."""
        return self.connection.uri

    # -- host facts -------------------------------------------------------------------------

    def versions(self) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
        """(libvirt, QEMU) versions from the live connection (getLibVersion, getVersion)."""
        lib, hyp = self.connection.versions()
        return parse_version(lib), parse_version(hyp)

    def host_facts(self) -> HostFacts:
        """Config and live versions: file-backed size, discard support, allocation, partition."""
        lib, qemu = self.versions()
        return HostFacts(
            virt_type=self.settings.virt_type,
            file_backed_memory_mb=self.settings.file_backed_memory_mb,
            discard_supported=discard_supported(lib, qemu),
            allocation_mode=self.settings.allocation_mode,
            partition=(
                partition.libvirt_partition_path(self.settings.guest_partition)
                if self.settings.guest_partition
                else None
            ),
        )

    def qemu_conf_text(self) -> str:
        """[libvirt] qemu_conf_path's text; libvirtd reads the same file for memory_backing_dir."""
        return store.read_qemu_conf(self.settings.qemu_conf_path)

    def memory_backing_dir(self) -> Path:
        """libvirt's effective directory: a custom memory_backing_dir D becomes D/libvirt/qemu."""
        return store.effective_memory_backing_dir(self.qemu_conf_text())

    def instance_dir(self, uuid: str) -> Path:
        """<state_path>/instances/<uuid> (uuid validated, so it cannot leave state_path)."""
        return self.settings.state_path / "instances" / validate_uuid(uuid)

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
        """Validate, build the domain from pure guest config, create the instance dir (and the
        disk overlay), then define and start under the spawn lock after the capacity guard."""
        name, uuid = validate_name(name), validate_uuid(uuid)
        _validate_flavor(flavor)
        conn = self.connection.get()
        self._refuse_duplicates(conn, name, uuid)
        host = self.host_facts()
        workdir = self.instance_dir(uuid)
        request = self._request(name, uuid, flavor, image, owner, nics)
        domain = guest_config.build_domain(request, host)
        instance_files.make_instance_dir(workdir)
        try:
            if request.overlay is not None:
                instance_files.create_overlay(image, request.overlay)
            with self._spawn_lock():
                if host.file_backed:
                    self._guard_capacity(flavor.memory_mb)
                self._ensure_partition()
                with translated(f"defining guest {name}"):
                    dom = conn.defineXML(domain.to_xml())
                try:
                    with translated(f"starting guest {name}"):
                        dom.create()
                except Exception:
                    guest_state.undefine_quietly(dom, _UNDEFINE_FLAGS)
                    raise
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise
        LOG.info("spawned guest %s (%s)", name, uuid)
        return self._info(dom)

    def power_off(self, uuid: str, timeout: float | None = None) -> bool:
        """ACPI shutdown, polled every 0.2 s; destroy (graceful, then forced) after the timeout."""
        dom = self._lookup(uuid)
        if not _is_active(dom):
            return True
        timeout = self.settings.shutdown_timeout if timeout is None else timeout
        if timeout > 0:
            with translated(f"shutting down guest {uuid}"):
                try:
                    dom.shutdown()
                except libvirt.libvirtError as exc:
                    if _is_active(dom):
                        raise
                    LOG.debug("guest stopped while asked to shut down: %s", exc)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not _is_active(dom):
                    return True
                time.sleep(0.2)
            LOG.warning("guest %s did not shut down in %.0f s; destroying it", uuid, timeout)
        self._destroy_domain(dom)
        return False

    def power_on(self, uuid: str) -> GuestInfo:
        """Start under the spawn lock, after the capacity guard on a file-backed host."""
        dom = self._lookup(uuid)
        if not _is_active(dom):
            with self._spawn_lock():
                if self.settings.file_backed_memory_mb:
                    self._guard_capacity(dom.maxMemory() // 1024)
                self._ensure_partition()
                with translated(f"starting guest {uuid}"):
                    dom.create()
        return self._info(dom)

    def reboot(self, uuid: str, hard: bool = False) -> GuestInfo:
        """As the interface says; a hard reboot of a suspended guest boots it afresh (its managed
        save image is dropped, as nova's hard reboot does)."""
        if hard:
            dom = self._lookup(uuid)
            if self._has_managed_save(dom):
                with translated(f"removing the saved state of guest {uuid}"):
                    dom.managedSaveRemove(0)
        return super().reboot(uuid, hard)

    def destroy(self, uuid: str) -> bool:
        """Destroy, undefine (managed save and snapshot metadata too), remove the instance dir."""
        uuid = validate_uuid(uuid)
        try:
            dom = self._lookup(uuid)
        except GuestNotFound:
            existed = False
        else:
            existed = True
            if _is_active(dom):
                self._destroy_domain(dom)
            with translated(f"undefining guest {uuid}"):
                try:
                    dom.undefineFlags(_UNDEFINE_FLAGS)
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() != libvirt.VIR_ERR_NO_DOMAIN:
                        raise
        shutil.rmtree(self.instance_dir(uuid), ignore_errors=True)
        if existed:
            self._release_partition()
        return existed

    # -- server actions ---------------------------------------------------------------------

    def pause(self, uuid: str) -> GuestInfo:
        """virDomainSuspend: the vCPUs stop, QEMU and the memory file stay."""
        dom = self._lookup(uuid)
        if self._state(dom) != libvirt.VIR_DOMAIN_PAUSED:
            with translated(f"pausing guest {uuid}"):
                dom.suspend()
        return self._info(dom)

    def unpause(self, uuid: str) -> GuestInfo:
        """virDomainResume of a paused guest."""
        dom = self._lookup(uuid)
        if self._state(dom) == libvirt.VIR_DOMAIN_PAUSED:
            with translated(f"unpausing guest {uuid}"):
                dom.resume()
        elif not _is_active(dom):
            raise HypervisorError(f"unpausing guest {uuid}", "the guest is not running")
        return self._info(dom)

    def suspend(self, uuid: str) -> GuestInfo:
        """virDomainManagedSave: libvirt writes the guest's memory and device state to
        <save dir>/<name>.save (/var/lib/libvirt/qemu/save by default) and stops QEMU, which
        removes the memory file; the next virDomainCreate restores from that image."""
        dom = self._lookup(uuid)
        if not _is_active(dom):
            if self._has_managed_save(dom):
                return self._info(dom)
            raise HypervisorError(f"suspending guest {uuid}", "the guest is not running")
        with translated(f"suspending guest {uuid}"):
            dom.managedSave(0)
        return self._info(dom)

    def resume(self, uuid: str) -> GuestInfo:
        """virDomainCreate restores from the managed save image and libvirt deletes the image
        after the restore; the capacity guard first, as every start."""
        return self.power_on(uuid)

    def inject_nmi(self, uuid: str) -> None:
        """virDomainInjectNMI."""
        dom = self._lookup(uuid)
        if not _is_active(dom):
            raise HypervisorError(f"injecting an NMI into guest {uuid}", "the guest is not running")
        with translated(f"injecting an NMI into guest {uuid}"):
            dom.injectNMI(0)

    def resize(
        self, uuid: str, flavor: Flavor, image: Image, start: bool, *, nics: Sequence[Nic] = ()
    ) -> GuestInfo:
        """Graceful stop, defineXML with the new flavor (guest config builder, the same
        overlay), then power_on; a new size that does not fit brings the old definition back."""
        _validate_flavor(flavor)
        dom = self._lookup(uuid)
        if self._has_managed_save(dom):
            # Its saved memory has the old size: restoring it into the new one would fail.
            raise HypervisorError(
                f"resizing guest {uuid}", "the guest is suspended; resume it first"
            )
        with translated(f"reading the definition of guest {uuid}"):
            old_xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        current = Domain.from_xml(old_xml)
        request = self._request(dom.name(), dom.UUIDString(), flavor, image, _owner(current), nics)
        domain = guest_config.build_domain(request, self.host_facts())
        if _is_active(dom):
            self.power_off(uuid)
        self._define(domain.to_xml(), f"redefining guest {uuid} with flavor {flavor.name}")
        LOG.info("guest %s (%s) redefined with flavor %s", dom.name(), uuid, flavor.name)
        if start:
            try:
                return self.power_on(uuid)
            except InsufficientBackingStore:
                LOG.warning("flavor %s does not fit; guest %s keeps its old one", flavor.name, uuid)
                self._define(old_xml, f"restoring the definition of guest {uuid}")
                try:
                    self.power_on(uuid)
                except FilememError as exc:
                    LOG.error("could not start guest %s again with its old flavor: %s", uuid, exc)
                raise
        return self._info(dom)

    def rebuild(
        self, uuid: str, flavor: Flavor, image: Image, start: bool, *, nics: Sequence[Nic] = ()
    ) -> GuestInfo:
        """Stop, remove the managed save image and the overlay, define from the new image
        (same uuid, name, owner), a new overlay, then power_on."""
        _validate_flavor(flavor)
        dom = self._lookup(uuid)
        with translated(f"reading the definition of guest {uuid}"):
            current = Domain.from_xml(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        request = self._request(dom.name(), dom.UUIDString(), flavor, image, _owner(current), nics)
        domain = guest_config.build_domain(request, self.host_facts())
        if _is_active(dom):
            self.power_off(uuid)
        if self._has_managed_save(dom):
            with translated(f"removing the saved state of guest {uuid}"):
                dom.managedSaveRemove(0)
        workdir = self.instance_dir(uuid)
        instance_files.make_instance_dir(workdir)
        (workdir / "disk.qcow2").unlink(missing_ok=True)
        if request.overlay is not None:
            instance_files.create_overlay(image, request.overlay)
        self._define(domain.to_xml(), f"redefining guest {uuid} from its new image")
        LOG.info("guest %s (%s) rebuilt from a %s image", dom.name(), uuid, image.kind)
        return self.power_on(uuid) if start else self._info(dom)

    # -- live migration -------------------------------------------------------------------

    def live_migrate(
        self, uuid: str, target: MigrationTarget, on_progress: ProgressCallback | None = None
    ) -> LiveMigration:
        """nova's p2p live migration (filemem.virt.libvirt.live_migration)."""
        dom = self._lookup(uuid)
        if not _is_active(dom):
            raise HypervisorError(f"live-migrating guest {uuid}", "the guest is not running")
        return live_migration.start_live_migration(
            dom, target, self.instance_dir(uuid), self.settings.migration, on_progress
        )

    def snapshot_disk(self, uuid: str, dest: Path) -> None:
        snapshot.export_disk(self._lookup(uuid), self.instance_dir(uuid) / "disk.qcow2", dest)

    def prepare_incoming(self, uuid: str, image: Image | None = None) -> Path:
        """The instance directory and, for a disk image, the overlay NON_SHARED_INC copies the
        source's top layer into (libvirt pre-creates no plain files itself)."""
        workdir = self.instance_dir(uuid)
        instance_files.make_instance_dir(workdir)
        if image is not None:
            instance_files.prepare_incoming(image, workdir / "disk.qcow2")
        with self._spawn_lock():
            self._ensure_partition()  # the incoming QEMU starts in it
        return workdir

    def guest_job(self, uuid: str) -> GuestJob:
        """virDomainGetJobInfo (bounded or unbounded = active) and virDomainIsPersistent."""
        return live_migration.guest_job(self._lookup(uuid), uuid)

    # -- observation ------------------------------------------------------------------------

    def list_guests(self) -> list[GuestInfo]:
        """Domains carrying filemem's metadata; qemu.conf is read once for all memory files."""
        conn = self.connection.get()
        with translated("listing guests"):
            domains = conn.listAllDomains(0)
        guests = []
        backing_dir = self.memory_backing_dir()  # qemu.conf read once, not per guest
        for dom in domains:
            try:
                info, managed = self._describe(dom, backing_dir)
            except GuestNotFound:
                continue  # undefined while we were looking
            if managed:  # other tools' domains on the same libvirtd are none of our business
                guests.append(info)
        return sorted(guests, key=lambda g: g.name)

    def get_guest(self, uuid: str) -> GuestInfo:
        """The guest's state, read from libvirt now."""
        return self._info(self._lookup(uuid))

    # -- internals --------------------------------------------------------------------------

    def _request(
        self, name: str, uuid: str, flavor: Flavor, image: Image, owner: str, nics: Sequence[Nic]
    ) -> GuestRequest:
        images.check_image(image)  # it may have changed since registration: refuse it if so
        workdir, drive = self.instance_dir(uuid), self.config_drive_path(uuid)
        return GuestRequest(
            name=name,
            uuid=uuid,
            flavor=flavor,
            image=image,
            console_log=workdir / "console.log",
            overlay=workdir / "disk.qcow2" if image.kind == "disk" else None,
            owner=owner,
            nics=tuple(nics),
            config_drive=drive if drive.exists() else None,  # written before by the agent
        )

    def _define(self, xml: str, action: str) -> libvirt.virDomain:
        conn = self.connection.get()
        with translated(action):
            return conn.defineXML(xml)

    @staticmethod
    def _state(dom: libvirt.virDomain) -> int:
        with translated(f"reading the state of guest {dom.name()}"):
            state: int = dom.state()[0]
        return state

    @staticmethod
    def _has_managed_save(dom: libvirt.virDomain) -> bool:
        with translated(f"looking for a saved state of guest {dom.name()}"):
            return bool(dom.hasManagedSaveImage(0))

    def _lookup(self, uuid: str) -> libvirt.virDomain:
        conn = self.connection.get()
        with translated(f"looking up guest {uuid}"):
            return conn.lookupByUUIDString(validate_uuid(uuid))

    def _refuse_duplicates(self, conn: libvirt.virConnect, name: str, uuid: str) -> None:
        for what, lookup, key in (
            ("uuid", conn.lookupByUUIDString, uuid),
            ("name", conn.lookupByName, name),
        ):
            try:
                lookup(key)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                    continue
                raise HypervisorError("looking up guest", exc.get_error_message()) from exc
            raise GuestAlreadyExists(f"a guest with {what} {key} is already defined on this host")

    def _guard_capacity(self, memory_mb: int) -> None:
        conf_text = self.qemu_conf_text()
        backing_dir = store.effective_memory_backing_dir(conf_text)
        facts = store.inspect_store(backing_dir, store.qemu_user(conf_text))
        running = [
            (f.nominal_bytes, f.allocated_bytes)
            for f in store.all_memory_files(backing_dir).values()
        ]
        capacity.check_guest_fits(
            memory_mb,
            facts.free_bytes,
            running,
            self.settings.headroom_mb * 1024 * 1024,
            backing_dir,
        )

    def _ensure_partition(self) -> None:
        guest_partition.ensure(self.settings.guest_partition, self.settings.guest_memory_limit_mb)

    def _release_partition(self) -> None:
        with self._spawn_lock():
            guest_partition.release_if_unused(self.settings.guest_partition, self.connection.get())

    def _spawn_lock(self) -> AbstractContextManager[None]:
        return guest_partition.spawn_lock(self.settings.state_path)

    def _destroy_domain(self, dom: libvirt.virDomain) -> None:
        with translated(f"destroying guest {dom.name()}"):
            try:
                dom.destroyFlags(libvirt.VIR_DOMAIN_DESTROY_GRACEFUL)
            except libvirt.libvirtError:
                if _is_active(dom):
                    dom.destroy()

    def _info(self, dom: libvirt.virDomain) -> GuestInfo:
        return self._describe(dom)[0]

    def _describe(
        self, dom: libvirt.virDomain, backing_dir: Path | None = None
    ) -> tuple[GuestInfo, bool]:
        """The guest's state, and whether filemem defined it (it carries our metadata)."""
        return guest_state.describe(dom, lambda: backing_dir or self.memory_backing_dir())


def _validate_flavor(flavor: Flavor) -> None:
    if flavor.memory_mb < 16:
        raise InvalidInput(f"memory {flavor.memory_mb} MiB is too small: at least 16 MiB")
    if flavor.vcpus < 1:
        raise InvalidInput(f"vcpus {flavor.vcpus} must be at least 1")
