"""FakeDriver's server actions keep the HypervisorDriver contract the libvirt driver keeps."""

from __future__ import annotations

import uuid as uuidlib
from pathlib import Path

import pytest

from filemem.common.guests import Flavor, GuestInfo, Image, PowerState
from filemem.exceptions import (
    GuestNotFound,
    HypervisorError,
    InsufficientBackingStore,
    InvalidGuestConfig,
)
from filemem.virt.fake import FakeDriver

IMAGE = Image(kind="kernel", kernel=Path("/boot/vmlinuz"))
OTHER_IMAGE = Image(kind="kernel", kernel=Path("/boot/other"))
SMALL = Flavor("small", 1, 256)
BIG = Flavor("big", 2, 384)
MIB = 2**20


@pytest.fixture
def driver(tmp_path: Path) -> FakeDriver:
    return FakeDriver(
        state_path=tmp_path / "state",
        backing_dir=tmp_path / "ram",
        file_backed_memory_mb=1024,
        capacity_mb=512,
    )


def spawn(driver: FakeDriver, flavor: Flavor = SMALL) -> GuestInfo:
    return driver.spawn(f"vm-{uuidlib.uuid4().hex[:6]}", str(uuidlib.uuid4()), flavor, IMAGE)


def test_pause_keeps_the_memory_file_and_counts_against_capacity(driver: FakeDriver) -> None:
    guest = spawn(driver)
    paused = driver.pause(guest.uuid)
    assert paused.power_state == PowerState.PAUSED and paused.domain_id == guest.domain_id
    assert paused.memory_file is not None and paused.memory_file.path.exists()
    assert driver.pause(guest.uuid).power_state == PowerState.PAUSED
    spawn(driver)
    with pytest.raises(InsufficientBackingStore):
        spawn(driver)  # the paused guest's file still takes room
    assert driver.unpause(guest.uuid).power_state == PowerState.RUNNING
    assert driver.unpause(guest.uuid).power_state == PowerState.RUNNING


def test_pause_and_unpause_refuse_a_stopped_guest(driver: FakeDriver) -> None:
    guest = spawn(driver)
    driver.power_off(guest.uuid)
    with pytest.raises(HypervisorError):
        driver.pause(guest.uuid)
    with pytest.raises(HypervisorError):
        driver.unpause(guest.uuid)
    with pytest.raises(HypervisorError):
        driver.inject_nmi(guest.uuid)
    with pytest.raises(GuestNotFound):
        driver.pause(str(uuidlib.uuid4()))


def test_suspend_saves_resume_restores_destroy_removes_the_image(driver: FakeDriver) -> None:
    guest = spawn(driver)
    assert guest.memory_file is not None
    suspended = driver.suspend(guest.uuid)
    assert suspended.managed_save and suspended.power_state == PowerState.SHUTDOWN
    assert not guest.memory_file.path.exists()
    assert driver.save_path(guest.uuid).stat().st_size == 256 * MIB
    assert driver.suspend(guest.uuid).managed_save  # again: no-op
    resumed = driver.resume(guest.uuid)
    assert resumed.power_state == PowerState.RUNNING and not resumed.managed_save
    assert not driver.save_path(guest.uuid).exists()
    driver.suspend(guest.uuid)
    assert driver.destroy(guest.uuid)
    assert not driver.save_path(guest.uuid).exists()


def test_suspend_of_a_stopped_guest_without_an_image_is_refused(driver: FakeDriver) -> None:
    guest = spawn(driver)
    driver.power_off(guest.uuid)
    with pytest.raises(HypervisorError):
        driver.suspend(guest.uuid)


def test_resize_redefines_and_a_size_that_does_not_fit_keeps_the_old(driver: FakeDriver) -> None:
    guest = spawn(driver)
    bigger = driver.resize(guest.uuid, BIG, IMAGE, start=True)
    assert (bigger.memory_mb, bigger.vcpus, bigger.power_state) == (384, 2, PowerState.RUNNING)
    assert bigger.memory_file is not None and bigger.memory_file.nominal_bytes == 384 * MIB
    with pytest.raises(InsufficientBackingStore):
        driver.resize(guest.uuid, Flavor("huge", 1, 1024), IMAGE, start=True)
    kept = driver.get_guest(guest.uuid)
    assert (kept.memory_mb, kept.power_state) == (384, PowerState.RUNNING)
    assert driver.flavor_of(guest.uuid) == BIG
    stopped = driver.resize(guest.uuid, SMALL, IMAGE, start=False)
    assert (stopped.memory_mb, stopped.power_state) == (256, PowerState.SHUTDOWN)
    with pytest.raises(InvalidGuestConfig):
        driver.resize(
            guest.uuid, Flavor("hp", 1, 256, extra_specs={"hw:mem_page_size": "large"}), IMAGE, True
        )
    assert driver.get_guest(guest.uuid).memory_mb == 256


def test_rebuild_keeps_uuid_and_name_and_takes_the_new_image(driver: FakeDriver) -> None:
    guest = spawn(driver)
    driver.suspend(guest.uuid)
    rebuilt = driver.rebuild(guest.uuid, SMALL, OTHER_IMAGE, start=True)
    assert (rebuilt.uuid, rebuilt.name, rebuilt.power_state) == (
        guest.uuid,
        guest.name,
        PowerState.RUNNING,
    )
    assert rebuilt.domain_id != guest.domain_id and not rebuilt.managed_save
    assert driver.image_of(guest.uuid) == OTHER_IMAGE
    assert not driver.save_path(guest.uuid).exists()
    left = driver.rebuild(guest.uuid, SMALL, IMAGE, start=False)
    assert left.power_state == PowerState.SHUTDOWN and left.memory_file is None


def test_injected_faults_and_nmis(driver: FakeDriver) -> None:
    guest = spawn(driver)
    driver.fail_next("suspend", HypervisorError("suspending", "disk full"))
    with pytest.raises(HypervisorError, match="disk full"):
        driver.suspend(guest.uuid)
    assert driver.get_guest(guest.uuid).power_state == PowerState.RUNNING
    driver.inject_nmi(guest.uuid)
    assert driver.nmis == [guest.uuid]


def test_a_hard_reboot_of_a_suspended_guest_boots_it_afresh(driver: FakeDriver) -> None:
    guest = spawn(driver)
    driver.suspend(guest.uuid)
    rebooted = driver.reboot(guest.uuid, hard=True)
    assert rebooted.power_state == PowerState.RUNNING and not rebooted.managed_save
    assert not driver.save_path(guest.uuid).exists()


def test_a_suspended_guest_is_not_resized(driver: FakeDriver) -> None:
    guest = spawn(driver)
    driver.suspend(guest.uuid)
    with pytest.raises(HypervisorError, match="suspended"):
        driver.resize(guest.uuid, BIG, IMAGE, start=True)
    assert driver.get_guest(guest.uuid).managed_save
