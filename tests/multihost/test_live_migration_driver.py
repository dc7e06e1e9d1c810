"""LibvirtDriver live migration between simulated hosts, each with its own libvirtd and store:
file-backed to file-backed, file-backed to a host without file-backed memory, and an abort."""

from __future__ import annotations

import subprocess
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import libvirt
import pytest

from devtools.cloud.spec import CloudSpec, HostSpec
from devtools.test_image import READY_LINE, ensure_test_image
from filemem.common.guests import Flavor, Image, PowerState
from filemem.exceptions import GuestNotFound, MigrationNotSupported
from filemem.virt.driver import MigrationTarget
from filemem.virt.libvirt.driver import DriverSettings, LibvirtDriver
from filemem.virt.libvirt.live_migration import destination_xml, migration_flags, migration_params
from filemem.virt.migration import MigrationOutcome, MigrationProgress, MigrationSettings
from tests.multihost.conftest import hosts_down, hosts_up
from tests.multihost.test_hosts import memory_files, wait_console

# Simulated hosts, each with a libvirtd of its own in a namespace: needs libvirtd.
pytestmark = pytest.mark.functional

IMAGE_DIR = Path("/var/lib/filemem/images/test")
STORE_MB = 1024
FLAVOR = Flavor("m256", 1, 256)
FILE_CHILDREN = ["source", "access", "allocation", "discard"]


@pytest.fixture(scope="module")
def cloud() -> Iterator[CloudSpec]:
    """h1 and h2 back guest memory with files; h3 has no file-backed memory."""
    spec = hosts_up(3, {3: HostSpec(3, file_backed=False)})
    yield spec
    hosts_down(spec)


def driver(spec: CloudSpec, index: int, **migration: object) -> LibvirtDriver:
    """The host's driver, from the root namespace: its libvirtd over TCP, and its state dir as
    seen from here (the same files its QEMU sees, through its own path)."""
    host = spec.hosts[index - 1]
    return LibvirtDriver(
        DriverSettings(
            connection_uri=spec.libvirt_uri(host),
            virt_type="qemu",
            file_backed_memory_mb=STORE_MB if host.file_backed else 0,
            allocation_mode="immediate",
            headroom_mb=16,
            state_path=spec.host_dir(host) / "state",
            qemu_conf_path=spec.host_dir(host) / "etc" / "qemu.conf",
            shutdown_timeout=5,
            migration=replace(MigrationSettings(), **migration),  # type: ignore[arg-type]
        )
    )


def target(spec: CloudSpec, index: int, uuid: str) -> MigrationTarget:
    host = spec.hosts[index - 1]
    return MigrationTarget(
        address=spec.address_of(host),
        file_backed_memory_mb=STORE_MB if host.file_backed else 0,
        instance_dir=spec.host_dir(host) / "state" / "instances" / uuid,
    )


def spawn(source: LibvirtDriver, touch_mb: int = 32) -> str:
    image_files = ensure_test_image(IMAGE_DIR)
    image = Image(
        kind="kernel",
        kernel=image_files.kernel,
        initrd=image_files.initrd,
        cmdline=image_files.cmdline(touch_mb=touch_mb),
    )
    uuid = str(uuidlib.uuid4())
    source.spawn(f"instance-{uuid}", uuid, FLAVOR, image)
    wait_console(source.console_log(uuid), READY_LINE)
    return uuid


def short_name(uuid: str) -> str:
    """What libvirt puts in the memory file's directory name (<id>-<short name>/pc.ram)."""
    return f"instance-{uuid}"[:20]


def memory_backing(drv: LibvirtDriver, uuid: str, flags: int = 0) -> ET.Element | None:
    dom = drv.connection.get().lookupByUUIDString(uuid)
    return ET.fromstring(dom.XMLDesc(flags)).find("memoryBacking")


def cleanup(uuid: str, *drivers: LibvirtDriver) -> None:
    for drv in drivers:
        drv.destroy(uuid)


def test_file_backed_guest_moves_with_its_memory_file(cloud: CloudSpec) -> None:
    h1, h2, h3 = (driver(cloud, i) for i in (1, 2, 3))
    uuid = spawn(h1)
    name = short_name(uuid)
    try:
        assert any(name in f for f in memory_files(cloud, cloud.hosts[0]))
        h2.prepare_incoming(uuid)
        progress: list[MigrationProgress] = []
        start = time.monotonic()
        running = h1.live_migrate(uuid, target(cloud, 2, uuid), progress.append)
        result = running.wait(120)
        took = time.monotonic() - start
        assert result is not None, "the migration did not end within 120 s"
        assert result.outcome is MigrationOutcome.COMPLETED, result.reason
        print(f"live migration of a 256 MiB file-backed guest h1 -> h2: {took:.2f} s")
        assert progress, "the monitor reported no progress"  # numbers: the abort test
        assert result.progress is not None and result.progress.memory_remaining_bytes == 0

        with pytest.raises(GuestNotFound):
            h1.get_guest(uuid)  # UNDEFINE_SOURCE
        moved = h2.get_guest(uuid)
        assert moved.power_state == PowerState.RUNNING and moved.file_backed
        assert h2.guest_job(uuid).persistent
        assert any(name in f for f in memory_files(cloud, cloud.hosts[1]))
        assert not any(name in f for f in memory_files(cloud, cloud.hosts[0]))
        for flags in (0, libvirt.VIR_DOMAIN_XML_INACTIVE):
            backing = memory_backing(h2, uuid, flags)
            assert backing is not None
            assert [c.tag for c in backing] == FILE_CHILDREN
        # The console log followed to h2's instance directory, and the guest still writes it.
        log = h2.console_log(uuid)
        assert log.exists()

        # To a host without file-backed memory: refused before libvirt is asked, and libvirt
        # itself refuses the rewritten XML (no memoryBacking left, not even an empty one).
        h3.prepare_incoming(uuid)
        with pytest.raises(MigrationNotSupported, match="memory backing source"):
            h2.live_migrate(uuid, target(cloud, 3, uuid))
        dom = h2.connection.get().lookupByUUIDString(uuid)
        source_dir = h2.instance_dir(uuid)
        xml = destination_xml(
            dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE), target(cloud, 3, uuid), source_dir
        )
        assert "memoryBacking" not in xml
        params = migration_params(target(cloud, 3, uuid), xml, 0)
        flags = migration_flags(MigrationSettings(), block_migration=False)
        with pytest.raises(libvirt.libvirtError, match="memoryBacking source"):
            dom.migrateToURI3(cloud.libvirt_uri(cloud.hosts[2]), params, flags)
        assert h2.get_guest(uuid).power_state == PowerState.RUNNING
        with pytest.raises(GuestNotFound):
            h3.get_guest(uuid)
    finally:
        cleanup(uuid, h1, h2, h3)


def test_abort_leaves_the_guest_running_on_the_source(cloud: CloudSpec) -> None:
    h1 = driver(cloud, 1, bandwidth_mib=1)  # 1 MiB/s: the migration takes minutes
    h2 = driver(cloud, 2)
    uuid = spawn(h1, touch_mb=64)
    name = short_name(uuid)
    try:
        h2.prepare_incoming(uuid)
        progress: list[MigrationProgress] = []
        running = h1.live_migrate(uuid, target(cloud, 2, uuid), progress.append)
        deadline = time.monotonic() + 30
        while not any(p.memory_processed_bytes for p in progress) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any(p.memory_processed_bytes for p in progress), "no progress within 30 s"
        total = max(p.memory_total_bytes for p in progress)
        assert total >= 256 * 1024 * 1024, progress
        assert all(p.memory_remaining_bytes <= total for p in progress)
        assert running.wait(0) is None, "the throttled migration ended too soon to abort it"
        running.abort()
        result = running.wait(60)
        assert result is not None and result.outcome is MigrationOutcome.CANCELLED, result
        assert result.reason  # libvirt's message
        guest = h1.get_guest(uuid)
        assert guest.power_state == PowerState.RUNNING
        assert not h1.guest_job(uuid).active
        with pytest.raises(GuestNotFound):
            h2.get_guest(uuid)
        assert any(name in f for f in memory_files(cloud, cloud.hosts[0]))
        assert not any(name in f for f in memory_files(cloud, cloud.hosts[1]))
    finally:
        cleanup(uuid, h1, h2)


def test_completion_timeout_with_abort_fails_and_the_guest_stays(cloud: CloudSpec) -> None:
    # 1 s per GiB, counted as 2 GiB: the timeout action runs after 2 s of a 1 MiB/s migration.
    h1 = driver(cloud, 1, bandwidth_mib=1, completion_timeout_s=1, timeout_action="abort")
    h2 = driver(cloud, 2)
    uuid = spawn(h1, touch_mb=64)
    try:
        h2.prepare_incoming(uuid)
        start = time.monotonic()
        result = h1.live_migrate(uuid, target(cloud, 2, uuid)).wait(60)
        assert result is not None and result.outcome is MigrationOutcome.FAILED, result
        assert "live_migration_completion_timeout" in result.reason
        assert 2 <= time.monotonic() - start < 30
        assert h1.get_guest(uuid).power_state == PowerState.RUNNING
        with pytest.raises(GuestNotFound):
            h2.get_guest(uuid)
    finally:
        cleanup(uuid, h1, h2)


def test_force_complete_pauses_and_the_guest_runs_on_the_destination(cloud: CloudSpec) -> None:
    h1 = driver(cloud, 1, bandwidth_mib=8)
    h2 = driver(cloud, 2)
    uuid = spawn(h1, touch_mb=48)
    try:
        h2.prepare_incoming(uuid)
        running = h1.live_migrate(uuid, target(cloud, 2, uuid))
        deadline = time.monotonic() + 30
        while h1.get_guest(uuid).power_state != PowerState.RUNNING or not h1.guest_job(uuid).active:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        running.force_complete()
        assert h1.get_guest(uuid).power_state == PowerState.PAUSED  # nova's force without post-copy
        result = running.wait(120)
        assert result is not None and result.outcome is MigrationOutcome.COMPLETED, result
        assert h2.get_guest(uuid).power_state == PowerState.RUNNING
    finally:
        cleanup(uuid, h1, h2)


def test_block_migration_copies_the_overlay_of_a_disk_image_guest(cloud: CloudSpec) -> None:
    images = cloud.base / "images"  # under the cloud's 0755 directory: QEMU reads it
    images.mkdir(mode=0o755, exist_ok=True)
    base = images / "base.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(base), "64M"], check=True)
    base.chmod(0o644)
    image = Image(kind="disk", disk=base, disk_format="raw")
    h1, h2 = driver(cloud, 1), driver(cloud, 2)
    uuid = str(uuidlib.uuid4())
    h1.spawn(f"instance-{uuid}", uuid, FLAVOR, image)
    try:
        # Something only the source's overlay holds: 1 MiB of 0xab, written while it is off.
        h1.power_off(uuid, timeout=0)
        write = ["qemu-io", "-c", "write -P 0xab 0 1M", str(h1.instance_dir(uuid) / "disk.qcow2")]
        assert (
            "wrote 1048576"
            in subprocess.run(write, check=True, capture_output=True).stdout.decode()
        )
        h1.power_on(uuid)

        with pytest.raises(MigrationNotSupported, match="needs block migration"):
            h1.live_migrate(uuid, target(cloud, 2, uuid))
        workdir = h2.prepare_incoming(uuid, image)
        assert (workdir / "disk.qcow2").exists()
        block = replace(target(cloud, 2, uuid), block_migration=True)
        result = h1.live_migrate(uuid, block).wait(120)
        assert result is not None and result.outcome is MigrationOutcome.COMPLETED, result

        assert h2.get_guest(uuid).power_state == PowerState.RUNNING
        with pytest.raises(GuestNotFound):
            h1.get_guest(uuid)
        source = ET.fromstring(h2.connection.get().lookupByUUIDString(uuid).XMLDesc(0)).find(
            "devices/disk/source"
        )
        assert source is not None and source.get("file") == str(workdir / "disk.qcow2")
        check = subprocess.run(
            ["qemu-io", "-U", "-r", "-c", "read -P 0xab 0 1M", str(workdir / "disk.qcow2")],
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0 and "read 1048576" in check.stdout, check
    finally:
        cleanup(uuid, h1, h2)
