"""FakeDriver keeps the HypervisorDriver contract: refusals, capacity, injected faults, files."""

from __future__ import annotations

import uuid as uuidlib
from pathlib import Path

import pytest

from filemem.common.guests import Flavor, Image, PowerState
from filemem.exceptions import (
    GuestAlreadyExists,
    GuestNotFound,
    HypervisorError,
    InsufficientBackingStore,
    InvalidGuestConfig,
)
from filemem.virt.fake import FakeDriver

IMAGE = Image(kind="kernel", kernel=Path("/boot/vmlinuz"))
SMALL = Flavor("small", 1, 256)


def new_uuid() -> str:
    return str(uuidlib.uuid4())


@pytest.fixture
def driver(tmp_path: Path) -> FakeDriver:
    return FakeDriver(
        state_path=tmp_path / "state",
        backing_dir=tmp_path / "ram",
        file_backed_memory_mb=1024,
        capacity_mb=512,
    )


def test_a_file_backed_guest_gets_a_memory_file_laid_out_as_libvirt_does(
    driver: FakeDriver,
) -> None:
    guest = driver.spawn("vm-1", new_uuid(), SMALL, IMAGE)
    assert guest.memory_file is not None
    assert guest.memory_file.path.parent.parent == driver.memory_backing_dir()
    assert guest.memory_file.nominal_bytes == 256 * 2**20
    driver.power_off(guest.uuid)
    assert not guest.memory_file.path.exists()  # gone at stop, as libvirt removes pc.ram
    assert driver.get_guest(guest.uuid).power_state == PowerState.SHUTDOWN


def test_the_capacity_guard_and_the_guest_config_policy_refuse_like_libvirt(
    driver: FakeDriver,
) -> None:
    driver.spawn("vm-1", new_uuid(), SMALL, IMAGE)
    driver.spawn("vm-2", new_uuid(), SMALL, IMAGE)
    with pytest.raises(InsufficientBackingStore):
        driver.spawn("vm-3", new_uuid(), SMALL, IMAGE)
    huge = Flavor("huge", 1, 128, extra_specs={"hw:mem_page_size": "large"})
    with pytest.raises(InvalidGuestConfig):
        driver.spawn("vm-4", new_uuid(), huge, IMAGE)
    with pytest.raises(GuestAlreadyExists):
        driver.spawn("vm-1", new_uuid(), SMALL, IMAGE)
    assert [g.name for g in driver.list_guests()] == ["vm-1", "vm-2"]  # refused ones left nothing


def test_injected_faults_and_destroy_twice(driver: FakeDriver) -> None:
    uuid = new_uuid()
    driver.fail_next("spawn", HypervisorError("starting guest vm-1", "boom"))
    with pytest.raises(HypervisorError, match="boom"):
        driver.spawn("vm-1", uuid, SMALL, IMAGE)
    assert not driver.instance_dir(uuid).exists()
    driver.spawn("vm-1", uuid, SMALL, IMAGE)  # the fault was for one call only
    assert driver.destroy(uuid) is True
    assert driver.destroy(uuid) is False  # a retried delete converges
    with pytest.raises(GuestNotFound):
        driver.get_guest(uuid)
