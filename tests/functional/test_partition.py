"""Real guests in a memory-limited partition: file-backed ones fit under it, RAM-backed ones die."""

from __future__ import annotations

import dataclasses
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path

import libvirt
import pytest

from devtools.test_image import TestImage
from filemem.common.guests import PowerState
from filemem.common.resources import MIB
from filemem.virt.libvirt import partition
from filemem.virt.libvirt.driver import LibvirtDriver
from filemem.virt.libvirt.partition import Partition
from tests.functional.conftest import DriverFactory, wait_for_console
from tests.functional.test_guests import boot

pytestmark = pytest.mark.functional

LIMIT_MB = 300
TOUCH_MB = 200
# The guest's tmpfs holds what it touches, so its RAM must exceed that by its kernel's needs: a
# 256 MiB guest touching 200 MiB panics out of memory inside, whatever the host allows.
GUEST_MB = 512
# Below what the RAM-backed guest touches, let alone QEMU's own ~75 MiB (measured, TCG).
OOM_LIMIT_MB = 150

PartitionedDriver = Callable[[int, int], tuple[LibvirtDriver, Partition]]


def qemu_pid(name: str) -> int:
    return int(Path(f"/run/libvirt/qemu/{name}.pid").read_text())


@pytest.fixture
def partitioned(make_driver: DriverFactory) -> Iterator[PartitionedDriver]:
    """Drivers whose guests run in a fresh partition; guests and partitions go at teardown."""
    made: list[tuple[LibvirtDriver, Partition]] = []

    def factory(limit_mb: int, file_backed_memory_mb: int) -> tuple[LibvirtDriver, Partition]:
        driver = make_driver(file_backed_memory_mb=file_backed_memory_mb)
        name = f"t-{uuidlib.uuid4().hex[:10]}"
        driver.settings = dataclasses.replace(
            driver.settings, guest_partition=name, guest_memory_limit_mb=limit_mb
        )
        # The driver ensures it again at spawn; the test needs the directories to read them.
        made.append((driver, partition.ensure_partition(name, limit_mb * MIB)))
        return made[-1]

    yield factory
    for driver, part in made:
        for guest in driver.list_guests():
            if driver.instance_dir(guest.uuid).exists():
                driver.destroy(guest.uuid)
        partition.remove_partition(part, wait=10.0)


def test_file_backed_guest_runs_under_a_limit_below_its_touched_memory(
    partitioned: PartitionedDriver,
    test_image: TestImage,
) -> None:
    driver, part = partitioned(LIMIT_MB, 2048)
    guest = boot(driver, test_image, touch_mb=TOUCH_MB, memory_mb=GUEST_MB)
    assert guest.file_backed and guest.power_state == PowerState.RUNNING
    wait_for_console(driver.console_log(guest.uuid), test_image.touched_line(TOUCH_MB))

    pid = qemu_pid(guest.name)
    assert partition.qemu_pids_in(part) == [pid]
    memory_line = next(
        line
        for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        if line.split(":")[1] == "memory"
    )
    assert memory_line.split(":")[2].startswith(f"/machine/{part.memory_dir.name}/")

    usage = partition.partition_memory_usage(part)
    assert usage.limit_bytes == LIMIT_MB * MIB
    assert usage.usage_bytes <= LIMIT_MB * MIB
    assert usage.max_usage_bytes <= LIMIT_MB * MIB
    # The 512 MiB preallocated memory file plus 200 MiB written do not fit: the limit did bite,
    # by writing back and dropping page cache, not by killing.
    assert usage.failcnt > 0
    assert not usage.oom_kills
    time.sleep(2)
    assert driver.get_guest(guest.uuid).power_state == PowerState.RUNNING


def test_ram_backed_guest_over_the_limit_is_oom_killed(
    partitioned: PartitionedDriver,
    test_image: TestImage,
) -> None:
    driver, part = partitioned(OOM_LIMIT_MB, 0)
    guest = boot(driver, test_image, touch_mb=TOUCH_MB, memory_mb=GUEST_MB)
    assert not guest.file_backed
    pid = qemu_pid(guest.name)
    assert partition.qemu_pids_in(part) == [pid]

    dom = driver.connection.get().lookupByUUIDString(guest.uuid)
    deadline = time.monotonic() + 120
    while dom.isActive() and time.monotonic() < deadline:
        time.sleep(0.5)
    log = driver.console_log(guest.uuid).read_text(errors="replace")
    assert not dom.isActive(), f"guest still running after touching {TOUCH_MB} MiB:\n{log[-2000:]}"
    # QEMU died of SIGKILL: libvirt calls that a crash; the guest never finished touching.
    assert tuple(dom.state()) == (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_CRASHED)
    assert test_image.touched_line(TOUCH_MB) not in log
    assert not Path(f"/proc/{pid}").exists()
    usage = partition.partition_memory_usage(part)
    # v1 counts the kill in QEMU's own cgroup, which libvirt removed with the guest; the
    # partition keeps the failed charges that led to it.
    assert (usage.oom_kills or 0) > 0 or usage.failcnt > 0, usage
    assert usage.max_usage_bytes <= OOM_LIMIT_MB * MIB


def test_a_stopped_guest_starts_again_after_its_partition_vanished(
    partitioned: PartitionedDriver,
    test_image: TestImage,
) -> None:
    """cgroups do not survive a host reboot: power_on makes the partition again."""
    driver, part = partitioned(LIMIT_MB, 2048)
    guest = boot(driver, test_image, memory_mb=GUEST_MB)
    driver.power_off(guest.uuid, timeout=0)
    partition.remove_partition(part, wait=10.0)
    assert not part.memory_dir.exists()
    assert driver.power_on(guest.uuid).power_state == PowerState.RUNNING
    assert partition.qemu_pids_in(part) == [qemu_pid(guest.name)]


def test_the_partition_goes_with_the_last_guest_and_comes_back_with_the_next(
    partitioned: PartitionedDriver,
    test_image: TestImage,
) -> None:
    """filemem made the partition's cgroups: deleting its last guest removes them from every
    hierarchy, while a guest still runs in it they stay, and the next boot makes them again."""
    driver, part = partitioned(LIMIT_MB, 2048)
    first = boot(driver, test_image, memory_mb=128)
    second = boot(driver, test_image, memory_mb=128)
    driver.destroy(first.uuid)
    assert all(d.exists() for d in part.directories), "a guest still runs in the partition"
    driver.destroy(second.uuid)
    left = [d for d in part.directories if d.exists()]
    assert not left, f"cgroups left behind: {left}"
    third = boot(driver, test_image, memory_mb=128)
    assert partition.qemu_pids_in(part) == [qemu_pid(third.name)]
