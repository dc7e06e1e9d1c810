"""A small loop-mounted backing store: the capacity guard refuses, no guest dies of SIGBUS."""

from __future__ import annotations

import subprocess
import time
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.test_image import TestImage
from filemem import conf as filemem_conf
from filemem.common.findings import Severity
from filemem.common.guests import GuestInfo, PowerState
from filemem.compute.host_check import check_host
from filemem.exceptions import HypervisorError, InsufficientBackingStore
from filemem.virt.libvirt.driver import LibvirtDriver
from tests.functional.conftest import SCRATCH, DriverFactory, virsh, wait_for_console
from tests.functional.test_guests import boot

STORE_MB = 200
GUEST_MB = 96


def run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


@pytest.fixture
def small_store(libvirtd: None, state_path: Path) -> Iterator[Path]:
    """A 200 MiB ext4 on a loop device, mounted over libvirt's effective memory_backing_dir.

    libvirtd reads memory_backing_dir once at start, so the test mounts over that directory
    instead of pointing libvirt elsewhere; guests started meanwhile get their memory from it.
    """
    from filemem.backing import store

    target = store.effective_memory_backing_dir(
        store.read_qemu_conf(Path("/etc/libvirt/qemu.conf"))
    )
    target.mkdir(parents=True, exist_ok=True)
    image = SCRATCH / f"store-{uuidlib.uuid4().hex[:8]}.img"
    run("truncate", "-s", f"{STORE_MB}M", str(image))
    run("mkfs.ext4", "-q", "-F", "-m", "0", str(image))
    run("mount", "-o", "loop", str(image), str(target))
    try:
        yield target
    finally:
        for _ in range(20):
            if subprocess.run(["umount", str(target)], capture_output=True).returncode == 0:
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"could not unmount the test store from {target}")
        image.unlink()


def assert_alive(driver: LibvirtDriver, guest: GuestInfo) -> None:
    time.sleep(1.0)  # a SIGBUS would have killed QEMU by now
    assert driver.get_guest(guest.uuid).power_state == PowerState.RUNNING
    log = Path("/var/log/libvirt/qemu") / f"{guest.name}.log"
    text = log.read_text(errors="replace") if log.exists() else ""
    assert "SIGBUS" not in text and "Bus error" not in text


def test_guard_refuses_a_guest_that_does_not_fit(
    small_store: Path,
    make_driver: DriverFactory,
    test_image: TestImage,
) -> None:
    driver = make_driver(file_backed_memory_mb=1024, allocation_mode="immediate")
    first = boot(driver, test_image, memory_mb=GUEST_MB)
    assert first.memory_file is not None
    assert first.memory_file.path.is_relative_to(small_store)
    wait_for_console(driver.console_log(first.uuid), test_image.ready_line)
    defined = virsh("list", "--all", "--name")

    with pytest.raises(InsufficientBackingStore) as refused:
        boot(driver, test_image, memory_mb=GUEST_MB)
    message = str(refused.value)
    assert f"needs {GUEST_MB} MiB" in message and str(small_store) in message
    assert "[libvirt] backing_store_headroom_mb" in message
    assert virsh("list", "--all", "--name") == defined, "a refused guest leaves nothing defined"
    assert_alive(driver, first)


def test_immediate_allocation_fails_cleanly_even_without_the_guard(
    small_store: Path,
    make_driver: DriverFactory,
    test_image: TestImage,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Why immediate is the default: a full store fails the start, not a running guest."""
    driver = make_driver(file_backed_memory_mb=1024, allocation_mode="immediate")
    first = boot(driver, test_image, memory_mb=GUEST_MB)
    wait_for_console(driver.console_log(first.uuid), test_image.ready_line)
    monkeypatch.setattr(driver, "_guard_capacity", lambda memory_mb: None)
    defined = virsh("list", "--all", "--name")
    with pytest.raises(HypervisorError) as failed:
        boot(driver, test_image, memory_mb=GUEST_MB)
    assert "starting guest" in str(failed.value) and failed.value.libvirt_message
    assert virsh("list", "--all", "--name") == defined
    assert_alive(driver, first)


def test_ondemand_guard_keeps_room_promised_to_running_guests(
    small_store: Path,
    make_driver: DriverFactory,
    test_image: TestImage,
) -> None:
    driver = make_driver(file_backed_memory_mb=1024, allocation_mode="ondemand")
    first = boot(driver, test_image, memory_mb=GUEST_MB)
    wait_for_console(driver.console_log(first.uuid), test_image.ready_line)
    usage = driver.get_guest(first.uuid).memory_file
    assert usage is not None and usage.allocated_bytes < usage.nominal_bytes
    # Free room alone would fit a second guest; the first one's untouched memory would not.
    with pytest.raises(InsufficientBackingStore, match="promised to 1 running guest"):
        boot(driver, test_image, memory_mb=GUEST_MB)
    assert_alive(driver, first)


def test_host_check_reports_a_store_smaller_than_file_backed_memory(
    small_store: Path,
    state_path: Path,
) -> None:
    config = state_path / "filemem.conf"
    config.write_text(
        f"[DEFAULT]\nram_allocation_ratio = 1.0\nstate_path = {state_path}\n"
        "[libvirt]\nvirt_type = qemu\nfile_backed_memory = 1024\n"
    )
    report = check_host(filemem_conf.load(config_files=[str(config)]))
    assert report.severity == Severity.ERROR
    [too_small] = [f for f in report.findings if f.code == "store.too_small"]
    assert too_small.option == "[libvirt] file_backed_memory"
    assert "1024" in too_small.message and str(small_store) in too_small.message
