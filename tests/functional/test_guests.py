"""Real file-backed guests on real libvirtd + QEMU (TCG): memory files, lifecycle, cleanup."""

from __future__ import annotations

import json
import subprocess
import time
import uuid as uuidlib
from pathlib import Path

import pytest

from devtools.test_image import TestImage
from filemem.backing import store
from filemem.common.guests import Flavor, GuestInfo, Image, PowerState
from filemem.exceptions import GuestAlreadyExists, InvalidGuestConfig
from filemem.virt.libvirt.driver import LibvirtDriver
from filemem.virt.xml.domain import Domain
from tests.functional.conftest import DriverFactory, guest_name, virsh, wait_for_console

MIB = 1024 * 1024
MEMORY_MB = 256


def boot(
    driver: LibvirtDriver,
    image: TestImage,
    touch_mb: int = 0,
    touch_delay: int = 0,
    memory_mb: int = MEMORY_MB,
    extra_specs: dict[str, str] | None = None,
) -> GuestInfo:
    flavor = Flavor(name="test", vcpus=1, memory_mb=memory_mb, extra_specs=extra_specs or {})
    kernel = Image(
        kind="kernel",
        kernel=image.kernel,
        initrd=image.initrd,
        cmdline=image.cmdline(touch_mb=touch_mb, touch_delay=touch_delay),
    )
    return driver.spawn(guest_name(), str(uuidlib.uuid4()), flavor, kernel)


def backing_dir(driver: LibvirtDriver) -> Path:
    return driver.memory_backing_dir()


def test_file_backed_guest_memory_file_grows_and_vanishes(
    make_driver: DriverFactory,
    test_image: TestImage,
) -> None:
    driver = make_driver(allocation_mode="ondemand")
    guest = boot(driver, test_image, touch_mb=96, touch_delay=4)
    assert guest.file_backed and guest.power_state == PowerState.RUNNING
    wait_for_console(driver.console_log(guest.uuid), test_image.ready_line)

    before = driver.get_guest(guest.uuid).memory_file
    assert before is not None
    memory_dir = before.path.parent
    assert memory_dir.parent == backing_dir(driver)
    assert memory_dir.name.startswith(f"{guest.domain_id}-")
    assert before.nominal_bytes == MEMORY_MB * MIB
    assert before.path.stat().st_size == MEMORY_MB * MIB

    wait_for_console(driver.console_log(guest.uuid), test_image.touched_line(96))
    after = driver.get_guest(guest.uuid).memory_file
    assert after is not None
    # The guest wrote 96 MiB into a tmpfs in its RAM. Its kernel also recycles pages it touched
    # while booting (measured: ~120 MiB at ready, +60 MiB after), so the growth is less than 96.
    assert after.allocated_bytes - before.allocated_bytes >= 32 * MIB, (before, after)
    assert after.allocated_bytes >= 96 * MIB
    assert after.allocated_bytes <= after.nominal_bytes

    assert driver.destroy(guest.uuid) is True
    assert not before.path.exists()
    assert not memory_dir.exists()
    assert guest.name not in virsh("list", "--all", "--name").split()
    assert not driver.instance_dir(guest.uuid).exists()


def test_immediate_allocation_preallocates_the_whole_file(
    make_driver: DriverFactory,
    test_image: TestImage,
) -> None:
    driver = make_driver(allocation_mode="immediate")
    guest = boot(driver, test_image)
    assert guest.memory_file is not None
    assert guest.memory_file.nominal_bytes == MEMORY_MB * MIB
    assert guest.memory_file.allocated_bytes >= MEMORY_MB * MIB
    xml = Domain.from_xml(virsh("dumpxml", guest.name))
    backing = xml.memory_backing
    assert backing is not None
    assert (backing.source_type, backing.access_mode, backing.allocation_mode, backing.discard) == (
        "file",
        "shared",
        "immediate",
        True,
    )


def test_guest_on_host_without_file_backed_memory_has_no_file_source(
    make_driver: DriverFactory,
    test_image: TestImage,
) -> None:
    driver = make_driver(file_backed_memory_mb=0)
    guest = boot(driver, test_image)
    wait_for_console(driver.console_log(guest.uuid), test_image.ready_line)
    assert guest.file_backed is False and guest.memory_file is None
    xml = virsh("dumpxml", guest.name)
    assert "memoryBacking" not in xml and "<source type='file'" not in xml
    assert store.guest_memory_dir(backing_dir(driver), guest.domain_id or -1) is None


def test_stop_start_reboot_delete(make_driver: DriverFactory, test_image: TestImage) -> None:
    driver = make_driver(shutdown_timeout=2)
    guest = boot(driver, test_image)
    log = driver.console_log(guest.uuid)
    wait_for_console(log, test_image.ready_line)
    old_file = driver.get_guest(guest.uuid).memory_file
    assert old_file is not None

    # the test guest ignores ACPI, so this is the graceful attempt followed by destroy
    assert driver.power_off(guest.uuid) is False
    stopped = driver.get_guest(guest.uuid)
    assert stopped.power_state == PowerState.SHUTDOWN and stopped.memory_file is None
    assert not old_file.path.exists(), "libvirt must remove the memory file at stop"

    started = driver.power_on(guest.uuid)
    assert started.power_state == PowerState.RUNNING and started.memory_file is not None
    wait_for_console(log, test_image.ready_line)

    rebooted = driver.reboot(guest.uuid, hard=True)
    assert rebooted.power_state == PowerState.RUNNING
    assert rebooted.domain_id != started.domain_id
    assert driver.destroy(guest.uuid) is True
    assert driver.destroy(guest.uuid) is False, "a second delete is a no-op"


def test_duplicate_name_is_refused_and_leaves_the_first(
    make_driver: DriverFactory,
    test_image: TestImage,
) -> None:
    driver = make_driver()
    guest = boot(driver, test_image)
    image = Image(kind="kernel", kernel=test_image.kernel, initrd=test_image.initrd)
    with pytest.raises(GuestAlreadyExists, match=guest.name):
        driver.spawn(guest.name, str(uuidlib.uuid4()), Flavor("t", 1, 128), image)
    assert driver.get_guest(guest.uuid).power_state == PowerState.RUNNING


def test_huge_pages_refused_on_file_backed_host_leaves_nothing(
    make_driver: DriverFactory,
    test_image: TestImage,
) -> None:
    driver = make_driver()
    before = virsh("list", "--all", "--name")
    with pytest.raises(InvalidGuestConfig, match="hw:mem_page_size"):
        boot(driver, test_image, extra_specs={"hw:mem_page_size": "large"})
    assert virsh("list", "--all", "--name") == before
    assert list((driver.settings.state_path / "instances").glob("*")) == []


def test_lifecycle_events_are_delivered(
    make_driver: DriverFactory,
    test_image: TestImage,
) -> None:
    events: list[tuple[str, str]] = []
    driver = make_driver(on_event=lambda e: events.append((e.uuid, e.event)))
    guest = boot(driver, test_image)
    driver.destroy(guest.uuid)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (guest.uuid, "undefined") not in events:
        time.sleep(0.1)
    mine = [event for uuid, event in events if uuid == guest.uuid]
    assert mine[0] == "defined", mine
    assert "started" in mine and "stopped" in mine, mine
    assert mine.index("started") < mine.index("stopped") and mine[-1] == "undefined", mine


def test_domains_not_defined_by_filemem_are_not_listed(
    make_driver: DriverFactory,
    state_path: Path,
) -> None:
    driver = make_driver()
    name = guest_name()
    xml = state_path / "foreign.xml"
    xml.write_text(
        f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>64</memory>"
        "<os><type>hvm</type></os></domain>"
    )
    virsh("define", str(xml))
    try:
        assert name in virsh("list", "--all", "--name").split()
        assert name not in [g.name for g in driver.list_guests()]
    finally:
        virsh("undefine", name)


def test_huge_page_guest_runs_on_a_host_without_file_backed_memory(
    make_driver: DriverFactory,
    test_image: TestImage,
) -> None:
    driver = make_driver(file_backed_memory_mb=0)
    guest = boot(driver, test_image, memory_mb=128, extra_specs={"hw:mem_page_size": "2MB"})
    wait_for_console(driver.console_log(guest.uuid), test_image.ready_line)
    xml = virsh("dumpxml", guest.name)
    assert "<hugepages>" in xml and "<source type='file'" not in xml


def test_disk_image_boots_through_a_copy_on_write_overlay(
    make_driver: DriverFactory,
    state_path: Path,
) -> None:
    """The base image is never written: the guest gets a qcow2 overlay, removed at delete."""
    base = state_path / "base.raw"
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(base), "64M"], check=True)
    base.chmod(0o644)
    driver = make_driver()
    image = Image(kind="disk", disk=base, disk_format="raw")
    guest = driver.spawn(guest_name(), str(uuidlib.uuid4()), Flavor("t", 1, 128), image)
    overlay = driver.instance_dir(guest.uuid) / "disk.qcow2"
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "-U", "--output=json", str(overlay)],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    assert info["format"] == "qcow2"
    assert info["backing-filename"] == str(base) and info["backing-filename-format"] == "raw"
    assert guest.power_state == PowerState.RUNNING
    assert driver.destroy(guest.uuid) is True
    assert not overlay.exists() and base.stat().st_size == 64 * 1024 * 1024
