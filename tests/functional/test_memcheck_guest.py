"""A real guest (libvirt, TCG, file-backed memory) runs the self-checking memcheck workload."""

from __future__ import annotations

import time
import uuid as uuidlib
from pathlib import Path

import pytest

from devtools.memcheck import (
    MemcheckExit,
    MemcheckFilled,
    MemcheckLine,
    MemcheckPass,
    memcheck_seed_from_uuid,
    parse_memcheck_console,
)
from devtools.test_image import TestImage
from filemem.common.guests import Flavor, Image
from tests.functional.conftest import DriverFactory, guest_name, virsh

pytestmark = pytest.mark.functional

MEM_MB = 64
HOT_MB = 16
VERIFY_EVERY = 2
GUEST_MB = 256  # memcheck's 64 MiB plus the guest kernel and initramfs
WANT_PASSES = 3


def wait_for_passes(log: Path, count: int, timeout: float) -> list[MemcheckLine]:
    """The console's memcheck lines once `count` pass lines (or an exit) are there."""
    deadline = time.monotonic() + timeout
    lines: list[MemcheckLine] = []
    while time.monotonic() < deadline:
        if log.exists():
            lines = parse_memcheck_console(log.read_text(errors="replace"))
            passes = [line for line in lines if isinstance(line, MemcheckPass)]
            if len(passes) >= count or any(isinstance(line, MemcheckExit) for line in lines):
                return lines
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "<no console log>"
    raise AssertionError(f"{count} memcheck passes not on the console within {timeout} s:\n{tail}")


def test_memcheck_guest_fills_and_verifies_its_memory(
    make_driver: DriverFactory,
    test_image: TestImage,
) -> None:
    driver = make_driver()
    uuid = str(uuidlib.uuid4())
    image = Image(
        kind="kernel",
        kernel=test_image.kernel,
        initrd=test_image.initrd,
        cmdline=test_image.memcheck_cmdline(MEM_MB, HOT_MB, VERIFY_EVERY),
    )
    guest = driver.spawn(guest_name(), uuid, Flavor("memcheck", 1, GUEST_MB), image)
    try:
        lines = wait_for_passes(driver.console_log(guest.uuid), WANT_PASSES, timeout=45)
    finally:
        destroyed = driver.destroy(guest.uuid)
    assert destroyed is True
    assert guest.name not in virsh("list", "--all", "--name").split()

    assert not any(isinstance(line, MemcheckExit) for line in lines), lines
    filled = lines[0]
    assert isinstance(filled, MemcheckFilled), lines
    assert filled.mb == MEM_MB
    # No filemem.seed: memcheck seeds from the SMBIOS UUID, which libvirt sets to the domain's.
    assert filled.seed == memcheck_seed_from_uuid(uuid)
    passes = [line for line in lines[1:] if isinstance(line, MemcheckPass)]
    assert len(passes) == len(lines) - 1 >= WANT_PASSES, lines
    assert [p.number for p in passes] == list(range(1, len(passes) + 1))
    assert [p.verified for p in passes] == [p.number % VERIFY_EVERY == 0 for p in passes]
    assert all(p.ok and p.bad_words == 0 for p in passes), passes
    assert any(p.verified for p in passes)
