"""File-backed guests outlive a partition half the size of the memory they write; RAM-backed die."""

from __future__ import annotations

import subprocess
import time
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import libvirt
import pytest

from devtools.memcheck import (
    MemcheckExit,
    MemcheckFilled,
    MemcheckLine,
    MemcheckPass,
    parse_memcheck_console,
)
from devtools.test_image import TestImage
from filemem.backing.residency import file_residency, qemu_pid
from filemem.common.guests import Flavor, Image, PowerState
from filemem.virt.libvirt import partition
from filemem.virt.libvirt.driver import DriverSettings, LibvirtDriver
from tests.functional.conftest import guest_name

pytestmark = pytest.mark.functional

MIB = 1024 * 1024
# The simulated host: every guest's QEMU (its own anonymous memory, ~78 MiB under TCG here, and
# the page cache of its memory file) is charged to one memory cgroup with this limit.
LIMIT_MB = 440
GUESTS = 3
# memcheck writes MEM_MB; the guest kernel needs ~90 MiB beside it (measured: 296 fits in 384 MiB,
# 192 does not fit in 256), so the guest gets a little more than that.
GUEST_MB = 400
MEM_MB = 296  # 3 x 296 = 888 MiB written, 2.02x the limit
HOT_MB = 16
VERIFY_EVERY = 10
# Guests sleep between passes so that 3 TCG vCPUs do not saturate the 2 CI cores.
PASS_DELAY_MS = 200
OBSERVE_S = 60.0
FILL_TIMEOUT_S = 150.0  # boot + fill, all guests; measured 15-35 s under the limit
OOM_TIMEOUT_S = 120.0  # measured: the first RAM-backed guest dies within ~10 s of the second start
POLL_S = 0.5


@dataclass
class PartitionedHost:
    """Drivers whose guests start in one memory-limited partition, and what they started."""

    state_path: Path
    part: partition.Partition
    drivers: list[LibvirtDriver] = field(default_factory=list)

    def driver(self, file_backed: bool) -> LibvirtDriver:
        settings = DriverSettings(
            connection_uri="qemu:///system",
            virt_type="qemu",
            # filemem's default config: file-backed, whole file allocated at start
            file_backed_memory_mb=GUESTS * GUEST_MB * 2 if file_backed else 0,
            allocation_mode="immediate",
            headroom_mb=16,
            state_path=self.state_path,
            qemu_conf_path=Path("/etc/libvirt/qemu.conf"),
            shutdown_timeout=5.0,
            guest_partition=self.part.name,
            guest_memory_limit_mb=LIMIT_MB,
        )
        made = LibvirtDriver(settings)
        self.drivers.append(made)
        return made


@pytest.fixture
def host(libvirtd: None, state_path: Path) -> Iterator[PartitionedHost]:
    """A fresh partition limited to LIMIT_MB; guests and the partition are removed afterwards."""
    name = f"fmtest-density-{uuidlib.uuid4().hex[:8]}"
    created = PartitionedHost(state_path, partition.ensure_partition(name, LIMIT_MB * MIB))
    try:
        yield created
    finally:
        for driver in created.drivers:
            for guest in driver.list_guests():
                if driver.instance_dir(guest.uuid).exists():
                    driver.destroy(guest.uuid)
            driver.connection.close()
        partition.remove_partition(created.part, wait=30.0)


@dataclass(frozen=True)
class Guest:
    uuid: str
    name: str
    pid: int  # its QEMU, to tell a restarted guest from one that kept running
    console: Path

    def lines(self) -> list[MemcheckLine]:
        return parse_memcheck_console(self.console.read_text(errors="replace"))


def boot(driver: LibvirtDriver, image: TestImage) -> Guest:
    cmdline = image.memcheck_cmdline(MEM_MB, HOT_MB, VERIFY_EVERY, pass_delay_ms=PASS_DELAY_MS)
    kernel = Image(kind="kernel", kernel=image.kernel, initrd=image.initrd, cmdline=cmdline)
    info = driver.spawn(guest_name(), str(uuidlib.uuid4()), Flavor("density", 1, GUEST_MB), kernel)
    pid = qemu_pid(info.name)
    assert pid is not None, f"guest {info.name} has no running QEMU right after spawn"
    return Guest(info.uuid, info.name, pid, driver.console_log(info.uuid))


def domain_state(driver: LibvirtDriver, guest: Guest) -> tuple[int, int]:
    """libvirt's (state, reason) of the guest's domain."""
    state, reason = driver.connection.get().lookupByUUIDString(guest.uuid).state()
    return int(state), int(reason)


def running(driver: LibvirtDriver, guest: Guest) -> bool:
    return (
        driver.get_guest(guest.uuid).power_state == PowerState.RUNNING
        and qemu_pid(guest.name) == guest.pid
    )


def kernel_oom_kills(part: partition.Partition) -> set[int]:
    """partition.oom_killed_pids over dmesg (which must be readable here)."""
    log = subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout
    return set(partition.oom_killed_pids(log, part))


def test_file_backed_guests_keep_running_on_twice_the_memory_of_their_partition(
    host: PartitionedHost,
    test_image: TestImage,
) -> None:
    assert GUESTS * MEM_MB >= 2 * LIMIT_MB, "the guests must write at least twice the limit"
    driver = host.driver(file_backed=True)
    guests = [boot(driver, test_image) for _ in range(GUESTS)]
    for guest in guests:
        info = driver.get_guest(guest.uuid)
        assert info.file_backed and info.memory_file is not None, info
        assert info.memory_file.nominal_bytes == GUEST_MB * MIB, info

    # Every guest writes its whole region first: 2x the limit, so most of it went to the store.
    deadline = time.monotonic() + FILL_TIMEOUT_S
    filled: dict[str, MemcheckFilled] = {}
    while len(filled) < len(guests):
        assert time.monotonic() < deadline, (
            f"only {len(filled)}/{len(guests)} guests filled their memory in {FILL_TIMEOUT_S} s"
        )
        for guest in guests:
            assert running(driver, guest), (
                f"{guest.name} stopped while filling: "
                f"{domain_state(driver, guest)}\n{guest.console.read_text(errors='replace')}"
            )
            lines = guest.lines()
            assert not any(isinstance(line, MemcheckExit) for line in lines), lines
            filled.update((guest.uuid, line) for line in lines if isinstance(line, MemcheckFilled))
        time.sleep(POLL_S)
    assert sum(f.mb for f in filled.values()) == GUESTS * MEM_MB

    end = time.monotonic() + OBSERVE_S
    resident_max = 0
    while time.monotonic() < end:
        for guest in guests:
            assert running(driver, guest), (
                f"{guest.name} stopped: {domain_state(driver, guest)}; kernel OOM kills in the "
                f"partition: {kernel_oom_kills(host.part)}"
            )
        memory_files = [driver.get_guest(g.uuid).memory_file for g in guests]
        residency = [file_residency(m.path) for m in memory_files if m is not None]
        resident_max = max(resident_max, sum(r.resident_bytes for r in residency if r))
        time.sleep(POLL_S * 2)
    usage = partition.partition_memory_usage(host.part)

    for guest in guests:
        lines = guest.lines()
        passes = [line for line in lines if isinstance(line, MemcheckPass)]
        assert not any(isinstance(line, MemcheckExit) for line in lines), (guest.name, lines)
        bad = [p for p in passes if not p.ok]
        assert not bad, f"{guest.name}: memory came back CORRUPT: {bad}"
        assert any(p.verified for p in passes), (
            f"{guest.name}: no pass verified all {MEM_MB} MiB in {OBSERVE_S} s: {passes}"
        )
    assert kernel_oom_kills(host.part) == set()
    # The limit really was binding: charges hit it and pages were written back and dropped...
    assert usage.limit_bytes == LIMIT_MB * MIB
    assert usage.failcnt > 0, usage
    assert usage.max_usage_bytes <= LIMIT_MB * MIB, usage
    # ... and the memory files are mostly on the store, not in RAM.
    assert resident_max < LIMIT_MB * MIB < GUESTS * MEM_MB * MIB, resident_max


def test_ram_backed_guests_are_oom_killed_in_the_same_partition(
    host: PartitionedHost,
    test_image: TestImage,
) -> None:
    driver = host.driver(file_backed=False)
    guests = [boot(driver, test_image) for _ in range(GUESTS)]
    assert all(not driver.get_guest(g.uuid).file_backed for g in guests)

    deadline = time.monotonic() + OOM_TIMEOUT_S
    while all(running(driver, guest) for guest in guests):
        assert time.monotonic() < deadline, (
            f"all {GUESTS} RAM-backed guests still run after {OOM_TIMEOUT_S} s in a "
            f"{LIMIT_MB} MiB partition: {partition.partition_memory_usage(host.part)}"
        )
        time.sleep(POLL_S)
    # libvirt notices a killed QEMU a moment after the kernel logged the kill; let it settle.
    time.sleep(2)

    dead = [g for g in guests if not running(driver, g)]
    killed = kernel_oom_kills(host.part)
    usage = partition.partition_memory_usage(host.part)
    assert usage.failcnt > 0 or (usage.oom_kills or 0) > 0, usage
    for guest in dead:
        assert domain_state(driver, guest) == (
            libvirt.VIR_DOMAIN_SHUTOFF,
            libvirt.VIR_DOMAIN_SHUTOFF_CRASHED,
        ), guest
        assert guest.pid in killed, (
            f"{guest.name} (QEMU {guest.pid}) stopped, but the kernel log has no OOM kill of it "
            f"in {host.part.libvirt_path}; kills there: {killed}"
        )
    assert usage.limit_bytes == LIMIT_MB * MIB
