"""libvirtd restarts: the driver reports it unavailable, then reconnects; guests survive."""

from __future__ import annotations

import subprocess
import time

import pytest

from devtools.test_image import TestImage
from filemem.common.guests import PowerState
from filemem.exceptions import HypervisorUnavailable
from tests.functional.conftest import REPO, DriverFactory, wait_for_console
from tests.functional.test_guests import boot


def stop_libvirtd() -> None:
    subprocess.run(["pkill", "-x", "libvirtd"], check=True)
    deadline = time.monotonic() + 30
    while subprocess.run(["pgrep", "-x", "libvirtd"], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "libvirtd did not exit"
        time.sleep(0.1)


def test_driver_survives_a_libvirtd_restart(
    make_driver: DriverFactory,
    test_image: TestImage,
) -> None:
    driver = make_driver()
    guest = boot(driver, test_image)
    wait_for_console(driver.console_log(guest.uuid), test_image.ready_line)
    stop_libvirtd()
    try:
        with pytest.raises(HypervisorUnavailable, match="qemu:///system"):
            driver.get_guest(guest.uuid)
    finally:
        subprocess.run([str(REPO / "scripts" / "start-libvirt")], check=True)
    # same driver object, no restart of ours: it reconnects on the next call
    assert driver.get_guest(guest.uuid).power_state == PowerState.RUNNING
    assert driver.destroy(guest.uuid) is True
