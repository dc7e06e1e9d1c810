"""Fixtures for real-guest tests: libvirtd started here, a cached test image, per-test state."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import pytest

from devtools.debian_image import DebianImage, ensure_debian_image
from devtools.test_image import TestImage, ensure_test_image
from filemem.virt.libvirt.connection import EventCallback
from filemem.virt.libvirt.driver import DriverSettings, LibvirtDriver

REPO = Path(__file__).resolve().parents[2]
TEST_IMAGE_DIR = Path(os.environ.get("FILEMEM_TEST_IMAGE_DIR", "/var/lib/filemem/images/test"))
DEBIAN_IMAGE_DIR = Path(
    os.environ.get("FILEMEM_DEBIAN_IMAGE_DIR", "/var/lib/filemem/images/debian")
)
# Not pytest's tmp_path: QEMU runs as libvirt-qemu and must traverse to console logs.
SCRATCH = Path("/var/tmp/filemem-tests")


@pytest.fixture(scope="session")
def libvirtd() -> None:
    """Start virtlogd + libvirtd if needed; a failure here fails every real-guest test."""
    # Huge pages let non-file-backed test hosts run hw:mem_page_size guests for real.
    env = {**os.environ, "FILEMEM_HUGEPAGES": os.environ.get("FILEMEM_HUGEPAGES", "160")}
    subprocess.run([str(REPO / "scripts" / "start-libvirt")], check=True, env=env)


@pytest.fixture(scope="session")
def test_image() -> TestImage:
    return ensure_test_image(TEST_IMAGE_DIR)


@pytest.fixture(scope="session")
def debian_image() -> DebianImage:
    """The Debian cloud guest (scripts/build-debian-image): minutes to build, then cached."""
    return ensure_debian_image(DEBIAN_IMAGE_DIR)


@pytest.fixture
def state_path() -> Iterator[Path]:
    SCRATCH.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.chmod(SCRATCH, 0o755)
    path = SCRATCH / uuidlib.uuid4().hex[:12]
    path.mkdir(mode=0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


DriverFactory = Callable[..., LibvirtDriver]


@pytest.fixture
def make_driver(libvirtd: None, state_path: Path) -> Iterator[DriverFactory]:
    """Build drivers; every guest they still know at teardown is destroyed."""
    made: list[LibvirtDriver] = []

    def factory(
        file_backed_memory_mb: int = 2048,
        allocation_mode: Literal["immediate", "ondemand"] = "immediate",
        headroom_mb: int = 16,
        shutdown_timeout: float = 5.0,
        on_event: EventCallback | None = None,
    ) -> LibvirtDriver:
        driver = LibvirtDriver(
            DriverSettings(
                connection_uri="qemu:///system",
                virt_type="qemu",
                file_backed_memory_mb=file_backed_memory_mb,
                allocation_mode=allocation_mode,
                headroom_mb=headroom_mb,
                state_path=state_path,
                qemu_conf_path=Path("/etc/libvirt/qemu.conf"),
                shutdown_timeout=shutdown_timeout,
            ),
            on_event=on_event,
        )
        made.append(driver)
        return driver

    yield factory
    for driver in made:
        for guest in driver.list_guests():
            if (driver.instance_dir(guest.uuid)).exists():
                driver.destroy(guest.uuid)
        driver.connection.close()


def guest_name() -> str:
    return f"t-{uuidlib.uuid4().hex[:10]}"


def wait_for_console(log: Path, text: str, timeout: float = 120.0) -> float:
    """Seconds until `text` shows on the guest's serial console; fails the test on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if log.exists() and text in log.read_text(errors="replace"):
            return time.monotonic() - start
        time.sleep(0.1)
    content = log.read_text(errors="replace")[-2000:] if log.exists() else "<no console log>"
    raise AssertionError(f"{text!r} not on the console within {timeout} s:\n{content}")


def virsh(*args: str) -> str:
    return subprocess.run(
        ["virsh", "-c", "qemu:///system", *args], check=True, capture_output=True, text=True
    ).stdout
