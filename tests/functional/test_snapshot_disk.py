"""A running guest's disk written out as one standalone qcow2, the guest paused meanwhile."""

from __future__ import annotations

import json
import subprocess
import uuid as uuidlib
from pathlib import Path

import pytest

from devtools.test_image import TestImage
from filemem.common.guests import Flavor, Image, PowerState
from filemem.exceptions import InvalidInput
from tests.functional.conftest import DriverFactory, guest_name
from tests.functional.test_guests import boot

PATTERN = b"filemem snapshot pattern\n" * 40


def qemu_img(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["qemu-img", *args], check=False, capture_output=True, text=True)


def test_snapshot_flattens_overlay_and_base_and_the_guest_runs_on(
    make_driver: DriverFactory, state_path: Path
) -> None:
    base = state_path / "base.raw"
    with base.open("wb") as handle:
        handle.truncate(16 * 1024 * 1024)
        handle.seek(4 * 1024 * 1024)
        handle.write(PATTERN)
    base.chmod(0o644)
    driver = make_driver()
    image = Image(kind="disk", disk=base, disk_format="raw")
    guest = driver.spawn(guest_name(), str(uuidlib.uuid4()), Flavor("t", 1, 128), image)
    try:
        dest = state_path / "snap.qcow2"
        driver.snapshot_disk(guest.uuid, dest)
        assert driver.get_guest(guest.uuid).power_state == PowerState.RUNNING
        info = json.loads(qemu_img("info", "--output=json", str(dest)).stdout)
        assert info["format"] == "qcow2" and "backing-filename" not in info
        assert info["virtual-size"] == 16 * 1024 * 1024
        # Same content as the guest's disk: the base's pattern came through the overlay.
        same = qemu_img("compare", "-f", "raw", "-F", "qcow2", str(base), str(dest))
        assert same.returncode == 0, same.stdout + same.stderr
        assert dest.stat().st_mode & 0o077 == 0, "a guest's disk is its owner's only"
        assert not list(state_path.glob(".snap.qcow2.partial")), "no partial file is left"
        driver.pause(guest.uuid)
        driver.snapshot_disk(guest.uuid, dest)  # a paused guest stays paused
        assert driver.get_guest(guest.uuid).power_state == PowerState.PAUSED
    finally:
        driver.destroy(guest.uuid)


def test_a_kernel_boot_has_no_disk_to_snapshot(
    make_driver: DriverFactory, state_path: Path, test_image: TestImage
) -> None:
    driver = make_driver()
    guest = boot(driver, test_image, memory_mb=128)
    try:
        with pytest.raises(InvalidInput, match="no disk to snapshot"):
            driver.snapshot_disk(guest.uuid, state_path / "snap.qcow2")
        assert not (state_path / "snap.qcow2").exists()
    finally:
        driver.destroy(guest.uuid)
