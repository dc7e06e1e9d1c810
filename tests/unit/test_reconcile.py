"""Reconcile policy: every (desired, observed) pair gives the steps that converge it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from filemem.common.guests import Flavor, GuestInfo, Image, PowerState
from filemem.compute.reconcile import plan as reconcile
from filemem.compute.reconcile.plan import DesiredInstance, Step, plan, plan_instance

UUID = "6f1f6d0e-1c7a-4bb5-9a36-0d3c3c1b8a11"
WANT = DesiredInstance(
    uuid=UUID,
    name="vm",
    vm_state="building",
    task_state="spawning",
    flavor=Flavor("small", 1, 256),
    image=Image(kind="kernel", kernel=Path("/k")),
)


def have(
    power: PowerState = PowerState.RUNNING, uuid: str = UUID, owner: str | None = "api"
) -> GuestInfo:
    return GuestInfo(
        uuid=uuid,
        name="vm",
        domain_id=1,
        power_state=power,
        memory_mb=256,
        vcpus=1,
        file_backed=True,
        owner=owner,
    )


def want(**changes: object) -> DesiredInstance:
    return dataclasses.replace(WANT, **changes)  # type: ignore[arg-type]


def kinds(steps: list[Step]) -> list[str]:
    return [s.kind for s in steps]


def test_building_without_guest_spawns_and_reports_active() -> None:
    [step] = plan_instance(WANT, None)
    assert step.kind == "spawn" and step.instance == WANT
    assert step.report == {"vm_state": "active", "power_state": 1, "task_state": None}


def test_building_with_guest_only_reports_so_a_restart_never_spawns_twice() -> None:
    [step] = plan_instance(WANT, have())
    assert step.kind == "report" and step.report["vm_state"] == "active"


def test_delete_destroys_then_reports_gone() -> None:
    assert kinds(plan_instance(want(deleted_requested=True, task_state="deleting"), have())) == [
        "destroy",
        "gone",
    ]
    assert kinds(plan_instance(want(deleted_requested=True), None)) == ["gone"]


def test_stop_start_reboot() -> None:
    active = want(vm_state="active")
    assert kinds(plan_instance(dataclasses.replace(active, task_state="powering-off"), have())) == [
        "stop"
    ]
    stopped = plan_instance(
        dataclasses.replace(active, task_state="powering-off"), have(PowerState.SHUTDOWN)
    )
    assert kinds(stopped) == ["report"] and stopped[0].report["vm_state"] == "stopped"
    assert kinds(
        plan_instance(want(vm_state="stopped", task_state="powering-on"), have(PowerState.SHUTDOWN))
    ) == ["start"]
    assert kinds(plan_instance(dataclasses.replace(active, task_state="rebooting"), have())) == [
        "reboot"
    ]
    assert kinds(
        plan_instance(dataclasses.replace(active, task_state="rebooting_hard"), have())
    ) == ["reboot_hard"]


def test_converged_instance_needs_nothing() -> None:
    assert plan_instance(want(vm_state="active", task_state=None), have()) == []
    assert plan_instance(want(vm_state="stopped", task_state=None), have(PowerState.SHUTDOWN)) == []
    assert plan_instance(want(vm_state="error", task_state=None), None) == []


def test_guest_that_stopped_by_itself_is_reported_not_restarted() -> None:
    [step] = plan_instance(want(vm_state="active", task_state=None), have(PowerState.SHUTDOWN))
    assert step.kind == "report" and step.report["vm_state"] == "stopped"


def test_vanished_guest_is_reported_as_error() -> None:
    [step] = plan_instance(want(vm_state="active", task_state=None), None)
    assert (
        step.report["vm_state"] == "error" and "no longer defined" in step.report["fault_message"]
    )


def test_orphans_owned_by_the_api_are_destroyed_cli_guests_are_left() -> None:
    orphan = have(uuid="00000000-0000-4000-8000-000000000001")
    cli_guest = have(uuid="00000000-0000-4000-8000-000000000002", owner="cli")
    steps = plan([want(vm_state="active", task_state=None)], [have(), orphan, cli_guest])
    assert steps == [Step("destroy", orphan.uuid)]


def test_from_api_parses_the_agent_view() -> None:
    data = {
        "uuid": UUID,
        "name": "vm",
        "host": "h",
        "vm_state": "building",
        "task_state": "spawning",
        "power_state": 0,
        "deleted_requested": False,
        "project_id": "p",
        "user_id": "u",
        "flavor": {
            "name": "f",
            "vcpus": 2,
            "memory_mb": 512,
            "root_gb": 0,
            "extra_specs": {"hw:mem_page_size": "large"},
        },
        "image": {
            "id": "i",
            "kind": "kernel",
            "kernel_path": "/k",
            "initrd_path": "/i",
            "cmdline": "console=ttyS0",
            "disk_path": None,
            "disk_format": None,
        },
    }
    parsed = DesiredInstance.from_api(data)
    assert parsed.flavor == Flavor("f", 2, 512, 0, {"hw:mem_page_size": "large"})
    assert parsed.image.kernel == Path("/k") and parsed.image.disk is None
    assert parsed.project_id == "p" and reconcile.OWNER == "api"
