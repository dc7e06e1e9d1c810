"""Reconcile policy: from desired instances (the API's view) and observed guests, the next steps.

Pure and level-triggered: the plan depends only on the two states, never on which message was
seen before, so an agent killed at any point converges after a restart. Every step is safe to
repeat: a spawn is planned only for a guest that does not exist, a report only repeats facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from filemem.common.guests import Flavor, GuestInfo, Image, PowerState
from filemem.common.states import (
    ACTIVE,
    BUILDING,
    DELETING,
    ERROR,
    POWERING_OFF,
    POWERING_ON,
    REBOOTING,
    REBOOTING_HARD,
    STOPPED,
)

OWNER = "api"  # the owner metadata of guests agents reconcile (and may reap as orphans)


@dataclass(frozen=True)
class DesiredInstance:
    """One instance the API assigned to this host (the agent view of docs/control-plane.md)."""

    uuid: str
    name: str
    vm_state: str
    task_state: str | None
    flavor: Flavor
    image: Image
    deleted_requested: bool = False
    project_id: str = ""
    user_id: str = ""

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> DesiredInstance:
        flavor, image = data["flavor"], data["image"]
        return cls(
            uuid=data["uuid"],
            name=data["name"],
            vm_state=data["vm_state"],
            task_state=data.get("task_state"),
            flavor=Flavor(
                name=flavor["name"],
                vcpus=int(flavor["vcpus"]),
                memory_mb=int(flavor["memory_mb"]),
                disk_gb=int(flavor.get("root_gb") or 0),
                extra_specs=dict(flavor.get("extra_specs") or {}),
            ),
            image=Image(
                kind=image["kind"],
                kernel=_path(image.get("kernel_path")),
                initrd=_path(image.get("initrd_path")),
                cmdline=image.get("cmdline") or "",
                disk=_path(image.get("disk_path")),
                disk_format=image.get("disk_format") or "qcow2",
            ),
            deleted_requested=bool(data.get("deleted_requested")),
            project_id=data.get("project_id") or "",
            user_id=data.get("user_id") or "",
        )


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


@dataclass(frozen=True)
class Step:
    """One thing to do. `report` is sent to the API after `kind` succeeded."""

    kind: Literal["spawn", "stop", "start", "reboot", "reboot_hard", "destroy", "report", "gone"]
    uuid: str
    instance: DesiredInstance | None = None
    report: dict[str, Any] = field(default_factory=dict)


def _state(vm_state: str, power: PowerState, task_state: str | None = None) -> dict[str, Any]:
    return {"vm_state": vm_state, "power_state": int(power), "task_state": task_state}


def plan_instance(want: DesiredInstance, have: GuestInfo | None) -> list[Step]:
    """The steps that bring one instance to what the API asks."""
    running = have is not None and have.power_state == PowerState.RUNNING
    if want.deleted_requested or want.task_state == DELETING:
        gone = Step("gone", want.uuid)
        return [Step("destroy", want.uuid), gone] if have is not None else [gone]
    if want.vm_state == ERROR:
        return []
    if want.vm_state == BUILDING:
        if have is None:
            return [Step("spawn", want.uuid, want, _state(ACTIVE, PowerState.RUNNING))]
        return [Step("report", want.uuid, report=_observed(have))]
    if have is None:
        return [
            Step(
                "report",
                want.uuid,
                report={
                    **_state(ERROR, PowerState.NOSTATE),
                    "fault_message": "the guest is no longer defined on its host",
                    "fault_code": 500,
                },
            )
        ]
    return _plan_existing(want, have, running)


def _plan_existing(want: DesiredInstance, have: GuestInfo, running: bool) -> list[Step]:
    task = want.task_state
    if task == POWERING_OFF:
        if running:
            return [Step("stop", want.uuid, report=_state(STOPPED, PowerState.SHUTDOWN))]
        return [Step("report", want.uuid, report=_state(STOPPED, PowerState.SHUTDOWN))]
    if task == POWERING_ON:
        if running:
            return [Step("report", want.uuid, report=_state(ACTIVE, PowerState.RUNNING))]
        return [Step("start", want.uuid, report=_state(ACTIVE, PowerState.RUNNING))]
    if task in (REBOOTING, REBOOTING_HARD):
        kind: Literal["reboot", "reboot_hard"] = (
            "reboot_hard" if task == REBOOTING_HARD else "reboot"
        )
        return [Step(kind, want.uuid, report=_state(ACTIVE, PowerState.RUNNING))]
    observed = _observed(have)
    # The guest changed on its own (powered itself off, crashed): tell the API, change nothing.
    if observed["vm_state"] != want.vm_state or task is not None:
        return [Step("report", want.uuid, report=observed)]
    return []


def _observed(have: GuestInfo) -> dict[str, Any]:
    if have.power_state == PowerState.RUNNING:
        return _state(ACTIVE, PowerState.RUNNING)
    if have.power_state == PowerState.CRASHED:
        return {
            **_state(ERROR, PowerState.CRASHED),
            "fault_message": "the guest crashed",
            "fault_code": 500,
        }
    return _state(STOPPED, have.power_state)


def plan(desired: list[DesiredInstance], observed: list[GuestInfo]) -> list[Step]:
    """Every step for this host: desired instances first, then guests nobody wants (orphans)."""
    by_uuid = {g.uuid: g for g in observed}
    steps = [step for want in desired for step in plan_instance(want, by_uuid.get(want.uuid))]
    wanted = {want.uuid for want in desired}
    steps += [
        Step("destroy", g.uuid) for g in observed if g.owner == OWNER and g.uuid not in wanted
    ]
    return steps
