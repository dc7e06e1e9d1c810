"""nova's server actions on real file-backed guests (libvirtd + QEMU TCG): pause, suspend (managed
save), resize and revert, rebuild, NMI, console tail."""

from __future__ import annotations

import uuid as uuidlib
from pathlib import Path

import pytest

from devtools.test_image import TestImage
from filemem.common.guests import Flavor, GuestInfo, Image, PowerState
from filemem.compute.console import console_tail
from filemem.db.models import utcnow
from filemem.exceptions import HypervisorError, InsufficientBackingStore
from filemem.placement.embedded import EmbeddedPlacement
from filemem.virt.libvirt.driver import LibvirtDriver
from filemem.virt.xml.domain import Domain
from tests.agent_stack import IGNORE_TIMEOUT_WARNING, build_stack, close_stack
from tests.functional.conftest import DriverFactory, guest_name, virsh, wait_for_console

MIB = 1024 * 1024
SAVE_DIR = Path("/var/lib/libvirt/qemu/save")


def kernel_image(image: TestImage, touch_mb: int = 0) -> Image:
    return Image(
        kind="kernel",
        kernel=image.kernel,
        initrd=image.initrd,
        cmdline=image.cmdline(touch_mb=touch_mb),
    )


def boot(driver: LibvirtDriver, image: Image, memory_mb: int = 256) -> GuestInfo:
    return driver.spawn(guest_name(), str(uuidlib.uuid4()), Flavor("t", 1, memory_mb), image)


def memory_file(driver: LibvirtDriver, uuid: str) -> Path:
    guest = driver.get_guest(uuid)
    assert guest.memory_file is not None, guest
    return guest.memory_file.path


def save_image(guest: GuestInfo) -> Path:
    """libvirt's managed save image: <save dir>/<domain name>.save (qemu.conf save_image_dir)."""
    return SAVE_DIR / f"{guest.name}.save"


def test_pause_and_unpause_keep_the_memory_file(
    make_driver: DriverFactory, test_image: TestImage
) -> None:
    driver = make_driver()
    guest = boot(driver, kernel_image(test_image))
    wait_for_console(driver.console_log(guest.uuid), test_image.ready_line)
    before = memory_file(driver, guest.uuid)

    paused = driver.pause(guest.uuid)
    assert paused.power_state == PowerState.PAUSED and paused.domain_id == guest.domain_id
    assert virsh("domstate", guest.name).strip() == "paused"
    assert memory_file(driver, guest.uuid) == before and before.exists()
    assert driver.pause(guest.uuid).power_state == PowerState.PAUSED  # again: no-op

    running = driver.unpause(guest.uuid)
    assert running.power_state == PowerState.RUNNING and running.domain_id == guest.domain_id
    assert virsh("domstate", guest.name).strip() == "running"


def test_suspend_writes_a_managed_save_image_resume_and_delete_remove_it(
    make_driver: DriverFactory, test_image: TestImage
) -> None:
    driver = make_driver()
    guest = boot(driver, kernel_image(test_image, touch_mb=96))
    log = driver.console_log(guest.uuid)
    wait_for_console(log, test_image.touched_line(96))
    memory = memory_file(driver, guest.uuid)

    suspended = driver.suspend(guest.uuid)
    assert suspended.power_state == PowerState.SHUTDOWN and suspended.managed_save
    assert suspended.memory_file is None and not memory.exists()
    saved = save_image(guest)
    assert saved.is_file()
    assert virsh("dominfo", guest.name).split("Managed save:")[1].split()[0] == "yes"
    size = saved.stat().st_size
    # The guest wrote 96 MiB; QEMU's migration stream skips zero pages, so the image holds what
    # the guest touched, not its 256 MiB.
    assert 96 * MIB < size < 256 * MIB, size
    print(f"managed save image of a 256 MiB guest that touched 96 MiB: {size / MIB:.1f} MiB")
    assert driver.suspend(guest.uuid).managed_save  # again: no-op
    with pytest.raises(HypervisorError, match="suspended"):
        driver.resize(guest.uuid, Flavor("big", 1, 384), kernel_image(test_image), start=True)

    resumed = driver.resume(guest.uuid)
    assert resumed.power_state == PowerState.RUNNING and not resumed.managed_save
    assert resumed.memory_file is not None and resumed.memory_file.path.exists()
    assert not saved.exists(), "libvirt removes the image once the guest is restored"
    # Restored from the image, not booted again.
    assert virsh("domstate", "--reason", guest.name).strip() == "running (restored)"

    # A hard reboot of a suspended guest boots it afresh: the saved state is dropped.
    driver.suspend(guest.uuid)
    rebooted = driver.reboot(guest.uuid, hard=True)
    assert rebooted.power_state == PowerState.RUNNING and not saved.exists()
    assert virsh("domstate", "--reason", guest.name).strip() == "running (booted)"

    driver.suspend(guest.uuid)
    assert saved.is_file()
    assert driver.destroy(guest.uuid) is True
    assert not saved.exists(), "deleting a suspended guest leaves no save image"
    assert not resumed.memory_file.path.exists()
    assert guest.name not in virsh("list", "--all", "--name").split()


def test_resize_up_and_revert_change_the_domain_and_its_memory_file(
    make_driver: DriverFactory, test_image: TestImage
) -> None:
    driver = make_driver(shutdown_timeout=1)
    image = kernel_image(test_image)
    guest = boot(driver, image)
    wait_for_console(driver.console_log(guest.uuid), test_image.ready_line)
    assert memory_file(driver, guest.uuid).stat().st_size == 256 * MIB

    bigger = driver.resize(guest.uuid, Flavor("big", 2, 384), image, start=True)
    assert (bigger.memory_mb, bigger.vcpus, bigger.power_state) == (384, 2, PowerState.RUNNING)
    assert bigger.name == guest.name and bigger.uuid == guest.uuid
    assert memory_file(driver, guest.uuid).stat().st_size == 384 * MIB
    domain = Domain.from_xml(virsh("dumpxml", guest.name))
    assert (domain.memory, domain.vcpu) == (384 * 1024, 2)
    assert domain.metadata is not None and domain.metadata.flavor_name == "big"
    assert driver.instance_dir(guest.uuid).joinpath("console.log").exists()

    reverted = driver.resize(guest.uuid, Flavor("t", 1, 256), image, start=True)
    assert (reverted.memory_mb, reverted.vcpus) == (256, 1)
    assert memory_file(driver, guest.uuid).stat().st_size == 256 * MIB

    driver.power_off(guest.uuid, timeout=0)
    stopped = driver.resize(guest.uuid, Flavor("big", 2, 384), image, start=False)
    assert (stopped.memory_mb, stopped.power_state) == (384, PowerState.SHUTDOWN)


def test_a_resize_that_does_not_fit_the_store_keeps_the_old_flavor_running(
    make_driver: DriverFactory, test_image: TestImage
) -> None:
    driver = make_driver(shutdown_timeout=1)
    image = kernel_image(test_image)
    guest = boot(driver, image, memory_mb=128)
    # 16 TiB: far more than any test store holds; the capacity guard refuses it at start.
    with pytest.raises(InsufficientBackingStore):
        driver.resize(guest.uuid, Flavor("enormous", 1, 16 * 1024 * 1024), image, start=True)
    after = driver.get_guest(guest.uuid)
    assert (after.memory_mb, after.power_state) == (128, PowerState.RUNNING)


def test_rebuild_recreates_the_guest_from_the_new_image(
    make_driver: DriverFactory, test_image: TestImage
) -> None:
    driver = make_driver(shutdown_timeout=1)
    guest = boot(driver, kernel_image(test_image))
    log = driver.console_log(guest.uuid)
    wait_for_console(log, test_image.ready_line)
    old_file = memory_file(driver, guest.uuid)

    new_image = kernel_image(test_image, touch_mb=8)
    rebuilt = driver.rebuild(guest.uuid, Flavor("t", 1, 256), new_image, start=True)
    assert (rebuilt.uuid, rebuilt.name) == (guest.uuid, guest.name)
    assert rebuilt.domain_id != guest.domain_id
    new_file = memory_file(driver, guest.uuid)
    assert new_file != old_file and not old_file.exists()
    domain = Domain.from_xml(virsh("dumpxml", guest.name))
    assert domain.os is not None and "filemem.touch_mb=8" in (domain.os.cmdline or "")
    wait_for_console(log, test_image.touched_line(8))

    stopped = driver.rebuild(guest.uuid, Flavor("t", 1, 256), kernel_image(test_image), False)
    assert stopped.power_state == PowerState.SHUTDOWN and stopped.memory_file is None


def test_inject_nmi_reaches_a_running_guest(
    make_driver: DriverFactory, test_image: TestImage
) -> None:
    driver = make_driver()
    guest = boot(driver, kernel_image(test_image))
    log = driver.console_log(guest.uuid)
    wait_for_console(log, test_image.ready_line)
    driver.inject_nmi(guest.uuid)
    # The guest kernel reports an NMI it has no handler for (pr_emerg: shown despite quiet).
    wait_for_console(log, "NMI", timeout=30)
    assert driver.get_guest(guest.uuid).power_state == PowerState.RUNNING


def test_console_tail_reads_the_guest_log(
    make_driver: DriverFactory, test_image: TestImage
) -> None:
    driver = make_driver()
    guest = boot(driver, kernel_image(test_image))
    log = driver.console_log(guest.uuid)
    wait_for_console(log, test_image.ready_line)
    tail = console_tail(log)
    assert test_image.ready_line in tail
    assert console_tail(log, limit=8) == log.read_bytes()[-8:].decode(errors="replace")


@pytest.mark.filterwarnings(IGNORE_TIMEOUT_WARNING)
def test_the_agent_carries_out_each_action_and_records_its_events(
    make_driver: DriverFactory,
    state_path: Path,
    test_image: TestImage,
    tmp_path: Path,
    embedded_placement: EmbeddedPlacement,
) -> None:
    """The whole agent side on a real guest: the API app in-process, the agent's loop, libvirt."""
    driver = make_driver(shutdown_timeout=1)
    image = {
        "name": "test",
        "kind": "kernel",
        "kernel_path": str(test_image.kernel),
        "initrd_path": str(test_image.initrd),
        "cmdline": test_image.cmdline(),
    }
    stack = build_stack(tmp_path, state_path, driver, embedded_placement.client(), image)
    try:
        uuid = stack.boot()
        log = driver.console_log(uuid)
        wait_for_console(log, test_image.ready_line)

        def state() -> tuple[str, int, str | None]:
            row = stack.instance(uuid)
            return row.vm_state, row.power_state, row.task_state

        stack.act(uuid, "pause", task_state="pausing")
        stack.converge()
        assert state() == ("paused", 3, None)
        assert virsh("domstate", f"instance-{uuid}").strip() == "paused"
        stack.act(uuid, "unpause", task_state="unpausing")
        stack.converge()
        assert state() == ("active", 1, None)

        stack.act(uuid, "trigger_crash_dump", crash_dump_requested=True)
        stack.converge()
        assert stack.instance(uuid).crash_dump_requested is False
        wait_for_console(log, "NMI", timeout=30)
        stack.act(uuid, "update", console_requested_at=utcnow())
        stack.converge()
        row = stack.instance(uuid)
        assert row.console_requested_at is None and "NMI" in (row.console_output or "")

        stack.act(
            uuid, "resize", task_state="resize_migrating", memory_mb=384, vcpus=2, flavor_name="b"
        )
        stack.converge()
        assert state() == ("resized", 1, None)
        assert memory_file(driver, uuid).stat().st_size == 384 * MIB
        stack.act(uuid, "revertResize", task_state="resize_reverting", memory_mb=256, vcpus=1)
        stack.converge()
        assert state() == ("active", 1, None)
        memory = memory_file(driver, uuid)
        assert memory.stat().st_size == 256 * MIB

        stack.act(uuid, "suspend", task_state="suspending")
        stack.converge()
        assert state() == ("suspended", 4, None)
        saved = SAVE_DIR / f"instance-{uuid}.save"
        assert saved.is_file() and not memory.exists()
        stack.converge()  # consistent: nothing to do
        assert state() == ("suspended", 4, None)

        stack.act(uuid, "delete", task_state="deleting", deleted_requested=True)
        stack.converge()
        assert not saved.exists() and not memory.exists()
        assert f"instance-{uuid}" not in virsh("list", "--all", "--name").split()
        assert [event[1:3] for event in stack.events(uuid)] == [
            ("compute__do_build_and_run_instance", "Success"),
            ("compute_pause_instance", "Success"),
            ("compute_unpause_instance", "Success"),
            ("compute_trigger_crash_dump", "Success"),
            ("compute_finish_resize", "Success"),
            ("compute_finish_revert_resize", "Success"),
            ("compute_suspend_instance", "Success"),
            ("compute_terminate_instance", "Success"),
        ]
        assert {event[3] for event in stack.events(uuid)} == {stack.hostname}
    finally:
        close_stack(stack)
