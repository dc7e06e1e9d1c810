"""Reconcile policy for nova's server actions: every task_state against every observed guest."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from filemem.common.guests import Flavor, GuestInfo, Image, PowerState
from filemem.compute.reconcile.plan import (
    BUILD_EVENT,
    CRASH_DUMP_EVENT,
    TERMINATE_EVENT,
    DesiredInstance,
    Step,
    observed_state,
    plan_instance,
)

UUID = "6f1f6d0e-1c7a-4bb5-9a36-0d3c3c1b8a11"
SMALL = Flavor("small", 1, 256)
BIG = Flavor("big", 2, 512)
WANT = DesiredInstance(
    uuid=UUID,
    name="vm",
    vm_state="active",
    task_state=None,
    flavor=SMALL,
    image=Image(kind="kernel", kernel=Path("/k")),
)

RUNNING = "running"
PAUSED = "paused"
SHUTOFF = "shutoff"
SAVED = "saved"  # shut off with a managed save image: suspended
CRASHED = "crashed"
MISSING = "missing"


def have(observed: str, flavor: Flavor = SMALL) -> GuestInfo | None:
    power = {
        RUNNING: PowerState.RUNNING,
        PAUSED: PowerState.PAUSED,
        SHUTOFF: PowerState.SHUTDOWN,
        SAVED: PowerState.SHUTDOWN,
        CRASHED: PowerState.CRASHED,
    }
    if observed == MISSING:
        return None
    return GuestInfo(
        uuid=UUID,
        name="instance-x",
        domain_id=1 if observed in (RUNNING, PAUSED) else None,
        power_state=power[observed],
        memory_mb=flavor.memory_mb,
        vcpus=flavor.vcpus,
        file_backed=True,
        owner="api",
        managed_save=observed == SAVED,
    )


def want(**changes: Any) -> DesiredInstance:
    return dataclasses.replace(WANT, **changes)


def summary(steps: list[Step]) -> list[tuple[str, str | None, int | None]]:
    """(kind, reported vm_state, reported power_state) of each step."""
    return [(s.kind, s.report.get("vm_state"), s.report.get("power_state")) for s in steps]


def test_observed_states_map_to_novas_vm_and_power_states() -> None:
    expected = {
        RUNNING: ("active", 1),
        PAUSED: ("paused", 3),
        SHUTOFF: ("stopped", 4),
        SAVED: ("suspended", 4),
        CRASHED: ("error", 6),
    }
    for observed, (vm_state, power) in expected.items():
        guest = have(observed)
        assert guest is not None
        state = observed_state(guest)
        assert (state["vm_state"], state["power_state"], state["task_state"]) == (
            vm_state,
            power,
            None,
        ), observed


# (vm_state, task_state, observed) -> [(step kind, reported vm_state, reported power)]
CASES: list[tuple[str, str | None, str, list[tuple[str, str | None, int | None]]]] = [
    # pause
    ("active", "pausing", RUNNING, [("pause", "paused", 3)]),
    ("active", "pausing", PAUSED, [("report", "paused", 3)]),  # paused before a restart
    ("active", "pausing", SHUTOFF, [("report", "stopped", 4)]),  # nothing to pause: task ends
    ("active", "pausing", SAVED, [("report", "suspended", 4)]),
    ("active", "pausing", CRASHED, [("report", "error", 6)]),
    ("active", "pausing", MISSING, [("report", "error", 0)]),
    # unpause
    ("paused", "unpausing", PAUSED, [("unpause", "active", 1)]),
    ("paused", "unpausing", RUNNING, [("report", "active", 1)]),
    ("paused", "unpausing", SHUTOFF, [("report", "stopped", 4)]),
    ("paused", "unpausing", SAVED, [("report", "suspended", 4)]),
    ("paused", "unpausing", MISSING, [("report", "error", 0)]),
    # suspend: running or paused guests are saved
    ("active", "suspending", RUNNING, [("suspend", "suspended", 4)]),
    ("paused", "suspending", PAUSED, [("suspend", "suspended", 4)]),
    ("active", "suspending", SAVED, [("report", "suspended", 4)]),
    ("active", "suspending", SHUTOFF, [("report", "stopped", 4)]),
    ("active", "suspending", MISSING, [("report", "error", 0)]),
    # resume: from the save image, or a cold boot when there is none
    ("suspended", "resuming", SAVED, [("resume", "active", 1)]),
    ("suspended", "resuming", SHUTOFF, [("resume", "active", 1)]),
    ("suspended", "resuming", RUNNING, [("report", "active", 1)]),
    ("suspended", "resuming", PAUSED, [("report", "paused", 3)]),
    ("suspended", "resuming", MISSING, [("report", "error", 0)]),
    # rebuild: whatever is there, back to the state before the rebuild
    ("active", "rebuilding", RUNNING, [("rebuild", "active", 1)]),
    ("active", "rebuilding", SHUTOFF, [("rebuild", "active", 1)]),
    ("active", "rebuilding", MISSING, [("rebuild", "active", 1)]),
    ("stopped", "rebuilding", SHUTOFF, [("rebuild", "stopped", 4)]),
    ("stopped", "rebuilding", RUNNING, [("rebuild", "stopped", 4)]),
    ("error", "rebuilding", MISSING, [("rebuild", "active", 1)]),
    ("error", "rebuilding", CRASHED, [("rebuild", "active", 1)]),
    # stop, start of paused and suspended guests
    ("paused", "powering-off", PAUSED, [("stop", "stopped", 4)]),
    ("active", "powering-on", PAUSED, [("report", "paused", 3)]),
    ("suspended", "powering-on", SAVED, [("start", "active", 1)]),
    # converged states: nothing to do
    ("paused", None, PAUSED, []),
    ("suspended", None, SAVED, []),
    ("resized", None, RUNNING, []),
    ("resized", None, SHUTOFF, []),
    # changed behind our back: reported, nothing changed
    ("paused", None, RUNNING, [("report", "active", 1)]),
    ("suspended", None, RUNNING, [("report", "active", 1)]),
    ("suspended", None, SHUTOFF, [("report", "stopped", 4)]),
    ("active", None, PAUSED, [("report", "paused", 3)]),
    ("active", None, SAVED, [("report", "suspended", 4)]),
    ("resized", None, CRASHED, [("report", "error", 6)]),
    ("resized", None, MISSING, [("report", "error", 0)]),
]


@pytest.mark.parametrize(("vm_state", "task_state", "observed", "expected"), CASES)
def test_every_action_against_every_observed_guest(
    vm_state: str,
    task_state: str | None,
    observed: str,
    expected: list[tuple[str, str | None, int | None]],
) -> None:
    steps = plan_instance(want(vm_state=vm_state, task_state=task_state), have(observed))
    assert summary(steps) == expected
    for step in steps:
        if step.report.get("vm_state") not in (None, "error"):
            assert step.report["task_state"] is None


def test_steps_that_end_a_task_carry_novas_event_name() -> None:
    events = {
        ("active", "pausing", RUNNING): "compute_pause_instance",
        ("active", "pausing", PAUSED): "compute_pause_instance",
        ("paused", "unpausing", PAUSED): "compute_unpause_instance",
        ("active", "suspending", RUNNING): "compute_suspend_instance",
        ("suspended", "resuming", SAVED): "compute_resume_instance",
        ("active", "rebuilding", RUNNING): "compute_rebuild_instance",
        ("active", "resize_migrating", RUNNING): "compute_finish_resize",
        ("resized", "resize_reverting", RUNNING): "compute_finish_revert_resize",
        ("active", "powering-off", RUNNING): "compute_stop_instance",
        ("stopped", "powering-on", SHUTOFF): "compute_start_instance",
        ("active", "rebooting", RUNNING): "compute_reboot_instance",
        ("active", "rebooting_hard", RUNNING): "compute_reboot_instance",
    }
    for (vm_state, task_state, observed), event in events.items():
        [step] = plan_instance(
            want(vm_state=vm_state, task_state=task_state, flavor=BIG), have(observed)
        )
        assert step.event == event, (vm_state, task_state, observed)
    [spawn] = plan_instance(want(vm_state="building", task_state="spawning"), None)
    assert spawn.event == BUILD_EVENT
    destroy, gone = plan_instance(want(task_state="deleting", deleted_requested=True), have(SAVED))
    assert (destroy.kind, destroy.event, gone.kind, gone.event) == (
        "destroy",
        TERMINATE_EVENT,
        "gone",
        None,
    )
    # Drift is not an action: no event.
    [drift] = plan_instance(want(vm_state="active"), have(SHUTOFF))
    assert drift.event is None


def test_resize_redefines_with_the_desired_flavor_and_runs_if_it_was_active() -> None:
    [step] = plan_instance(want(task_state="resize_migrating", flavor=BIG), have(RUNNING))
    assert (step.kind, step.run, step.instance and step.instance.flavor) == ("resize", True, BIG)
    assert step.report == {"vm_state": "resized", "power_state": 1, "task_state": None}
    [stopped] = plan_instance(
        want(vm_state="stopped", task_state="resize_migrating", flavor=BIG), have(SHUTOFF)
    )
    assert (stopped.kind, stopped.run, stopped.report["power_state"]) == ("resize", False, 4)


def test_resize_already_done_is_only_reported_or_started_again() -> None:
    # The guest has the new flavor (redefined before an agent restart).
    [done] = plan_instance(want(task_state="resize_migrating", flavor=BIG), have(RUNNING, BIG))
    assert summary([done]) == [("report", "resized", 1)]
    # Redefined but not started again when the agent stopped: started now.
    [start] = plan_instance(want(task_state="resize_migrating", flavor=BIG), have(SHUTOFF, BIG))
    assert summary([start]) == [("start", "resized", 1)]
    [left] = plan_instance(
        want(vm_state="stopped", task_state="resize_migrating", flavor=BIG), have(SHUTOFF, BIG)
    )
    assert summary([left]) == [("report", "resized", 4)]


def test_revert_redefines_with_the_old_flavor_keeping_the_power_state() -> None:
    running = plan_instance(
        want(vm_state="resized", task_state="resize_reverting"), have(RUNNING, BIG)
    )
    assert summary(running) == [("resize", "active", 1)] and running[0].run is True
    stopped = plan_instance(
        want(vm_state="resized", task_state="resize_reverting"), have(SHUTOFF, BIG)
    )
    assert summary(stopped) == [("resize", "stopped", 4)] and stopped[0].run is False
    done = plan_instance(want(vm_state="resized", task_state="resize_reverting"), have(RUNNING))
    assert summary(done) == [("report", "active", 1)]


def test_a_crash_dump_request_sends_an_nmi_and_is_answered() -> None:
    steps = plan_instance(want(crash_dump_requested=True), have(RUNNING))
    assert [(s.kind, s.report, s.event) for s in steps] == [
        ("crash_dump", {"crash_dump_requested": False}, CRASH_DUMP_EVENT)
    ]
    # No longer running: answered without an NMI, and the drift reported first.
    steps = plan_instance(want(crash_dump_requested=True), have(SHUTOFF))
    assert [(s.kind, s.report.get("crash_dump_requested")) for s in steps] == [
        ("report", None),
        ("report", False),
    ]


def test_a_console_request_is_answered_first_in_any_state() -> None:
    at = "2026-12-03T10:00:00.123456"
    for observed in (RUNNING, SHUTOFF, SAVED, MISSING):
        steps = plan_instance(want(console_requested_at=at), have(observed))
        assert steps[0].kind == "console" and steps[0].instance is not None, observed
        assert steps[0].instance.console_requested_at == at
    [only] = plan_instance(want(vm_state="error", console_requested_at=at), None)
    assert only.kind == "console"
    deleting = plan_instance(want(deleted_requested=True, console_requested_at=at), have(RUNNING))
    assert [s.kind for s in deleting] == ["destroy", "gone"]


def test_from_api_reads_the_requests_and_the_moves() -> None:
    data = {
        "uuid": UUID,
        "name": "vm",
        "vm_state": "active",
        "task_state": None,
        "flavor": {"name": "f", "vcpus": 1, "memory_mb": 256, "root_gb": 0},
        "image": {"kind": "kernel", "kernel_path": "/k"},
        "crash_dump_requested": True,
        "console_requested_at": "2026-12-03T10:00:00",
        "migration_uuids": ["0b6ad0b4-3a4c-4bd5-8f8a-4b3c1b9a1c11"],
    }
    parsed = DesiredInstance.from_api(data)
    assert parsed.crash_dump_requested is True
    assert parsed.console_requested_at == "2026-12-03T10:00:00"
    assert parsed.migration_uuids == ("0b6ad0b4-3a4c-4bd5-8f8a-4b3c1b9a1c11",)
    older = DesiredInstance.from_api(
        {
            k: v
            for k, v in data.items()
            if k not in ("crash_dump_requested", "console_requested_at", "migration_uuids")
        }
    )
    assert (older.crash_dump_requested, older.console_requested_at, older.migration_uuids) == (
        False,
        None,
        (),
    )
