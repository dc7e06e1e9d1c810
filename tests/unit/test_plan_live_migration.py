"""The reconcile plan for live migrations, pure: source, destination, and after a crash."""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from filemem.common.guests import Flavor, GuestInfo, Image, PowerState
from filemem.compute.reconcile.plan import (
    INTERRUPTED,
    LIVE_MIGRATION_EVENT,
    POST_LIVE_MIGRATION_EVENT,
    PRE_LIVE_MIGRATION_EVENT,
    DesiredInstance,
    IncomingMigration,
    LiveMigrationSpec,
    MigrationFacts,
    Step,
    plan,
)

MID = str(uuidlib.uuid4())
LM = LiveMigrationSpec(MID, "dest", "10.0.0.2", 2048, dest_prepared=True)


def want(**changes: object) -> DesiredInstance:
    values: dict[str, object] = {
        "uuid": str(uuidlib.uuid4()),
        "name": "vm",
        "vm_state": "active",
        "task_state": "migrating",
        "flavor": Flavor("m1", 1, 256),
        "image": Image(kind="kernel", kernel=Path("/k")),
    }
    return DesiredInstance(**{**values, **changes})  # type: ignore[arg-type]


def have(uuid: str, power: PowerState = PowerState.RUNNING) -> GuestInfo:
    return GuestInfo(
        uuid=uuid,
        name=f"instance-{uuid}",
        domain_id=3,
        power_state=power,
        memory_mb=256,
        vcpus=1,
        file_backed=True,
        owner="api",
    )


def kinds(steps: list[Step]) -> list[tuple[str, dict[str, Any]]]:
    return [(s.kind, s.migration_body) for s in steps]


def test_the_agent_view_parses() -> None:
    base = {
        "uuid": "u",
        "name": "n",
        "vm_state": "active",
        "task_state": "migrating",
        "flavor": {"name": "f", "vcpus": 1, "memory_mb": 256},
        "image": {"kind": "kernel", "kernel_path": "/k"},
    }
    lm = {
        "migration_uuid": MID,
        "dest_host": "b",
        "dest_address": "10.0.0.2",
        "dest_file_backed_memory_mb": 2048,
        "block_migration": False,
        "dest_prepared": True,
        "force_complete": True,
        "abort": False,
    }
    source = DesiredInstance.from_api({**base, "live_migration": lm, "incoming_migration": None})
    assert source.live_migration == LiveMigrationSpec(
        MID, "b", "10.0.0.2", 2048, False, True, True, False
    )
    incoming = {"migration_uuid": MID, "source_host": "a"}
    dest = DesiredInstance.from_api({**base, "incoming_migration": incoming})
    assert dest.incoming_migration == IncomingMigration(MID, "a") and dest.live_migration is None
    assert DesiredInstance.from_api(base).live_migration is None  # an older API


# -- source ------------------------------------------------------------------------------


def test_source_waits_for_the_destination_then_starts_once() -> None:
    w = want(live_migration=replace(LM, dest_prepared=False))
    assert plan([w], [have(w.uuid)], {w.uuid: MigrationFacts()}) == []
    w = want(uuid=w.uuid, live_migration=LM)
    [step] = plan([w], [have(w.uuid)], {w.uuid: MigrationFacts()})
    assert step.kind == "live_migrate" and step.migration_uuid == MID
    # Running in this agent: nothing more, until a request comes.
    assert plan([w], [have(w.uuid)], {w.uuid: MigrationFacts(running_here=True)}) == []
    # Ended in this agent (the API has not caught up yet): never started again.
    assert plan([w], [have(w.uuid)], {w.uuid: MigrationFacts(finished_here=True)}) == []


@pytest.mark.parametrize("flag", ["force_complete", "abort"])
def test_requests_reach_the_running_migration(flag: str) -> None:
    changes: dict[str, Any] = {flag: True}
    w = want(live_migration=replace(LM, **changes))
    [step] = plan([w], [have(w.uuid)], {w.uuid: MigrationFacts(running_here=True)})
    assert step.kind == "migration_control"


def test_abort_before_the_start_cancels() -> None:
    w = want(live_migration=replace(LM, abort=True))
    assert kinds(plan([w], [have(w.uuid)], {w.uuid: MigrationFacts()})) == [
        (
            "migration_event",
            {"event": "cancelled", "reason": "aborted before the migration started"},
        )
    ]


def test_a_guest_that_left_is_neither_respawned_nor_reported_lost() -> None:
    w = want(live_migration=LM)
    assert plan([w], [], {w.uuid: MigrationFacts(started_marker=True)}) == []


def test_restarted_source_reports_the_interrupted_migration() -> None:
    w = want(live_migration=LM)
    [step] = plan([w], [have(w.uuid)], {w.uuid: MigrationFacts(started_marker=True)})
    assert step.kind == "migration_event" and step.event == LIVE_MIGRATION_EVENT
    assert step.migration_body == {"event": "failed", "reason": INTERRUPTED}


def test_restarted_source_waits_for_a_job_still_running_in_libvirt() -> None:
    w = want(live_migration=LM)
    facts = MigrationFacts(started_marker=True, job_active=True)
    assert plan([w], [have(w.uuid)], {w.uuid: facts}) == []


def test_restarted_source_before_prepared_waits() -> None:
    w = want(live_migration=replace(LM, dest_prepared=False))
    assert plan([w], [have(w.uuid)], {w.uuid: MigrationFacts()}) == []


# -- destination ------------------------------------------------------------------------


def test_destination_prepares_once_and_never_spawns() -> None:
    w = want(incoming_migration=IncomingMigration(MID, "src"))
    [step] = plan([w], [], {w.uuid: MigrationFacts()})
    assert step.kind == "prepare_incoming" and step.event == PRE_LIVE_MIGRATION_EVENT
    assert step.migration_body == {"event": "prepared"}
    assert plan([w], [], {w.uuid: MigrationFacts(prepared_marker=True)}) == []
    # Even a building-looking view never spawns an incoming instance.
    building = replace(w, vm_state="building")
    assert [s.kind for s in plan([building], [], {})] == ["prepare_incoming"]


def test_destination_leaves_the_arriving_guest_alone() -> None:
    w = want(incoming_migration=IncomingMigration(MID, "src"))
    arriving = have(w.uuid, PowerState.PAUSED)
    facts = MigrationFacts(prepared_marker=True, job_active=True, persistent=False)
    assert plan([w], [arriving], {w.uuid: facts}) == []
    # Running but still transient (libvirt's finish phase): not yet.
    facts = MigrationFacts(prepared_marker=True, persistent=False)
    assert plan([w], [have(w.uuid)], {w.uuid: facts}) == []


def test_destination_reports_completed_when_the_guest_runs_here_persistently() -> None:
    w = want(incoming_migration=IncomingMigration(MID, "src"))
    [step] = plan([w], [have(w.uuid)], {w.uuid: MigrationFacts(prepared_marker=True)})
    assert step.kind == "migration_event" and step.event == POST_LIVE_MIGRATION_EVENT
    assert step.migration_body == {"event": "completed"}


def test_an_incoming_guest_is_no_orphan_and_a_delete_request_does_not_destroy_it() -> None:
    w = want(incoming_migration=IncomingMigration(MID, "src"), deleted_requested=True)
    steps = plan([w], [have(w.uuid, PowerState.PAUSED)], {w.uuid: MigrationFacts(job_active=True)})
    assert [s.kind for s in steps] == []


def test_a_guest_in_a_migration_job_is_never_reaped_as_an_orphan() -> None:
    uuid = str(uuidlib.uuid4())
    arriving = have(uuid, PowerState.PAUSED)
    assert plan([], [arriving], {uuid: MigrationFacts(job_active=True)}) == []
    assert [s.kind for s in plan([], [arriving], {})] == ["destroy"]
