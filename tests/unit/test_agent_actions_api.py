"""Server actions end to end in one process: the real API app (SQLite), the agent's HTTP client,
the reconcile loop, FakeDriver and embedded Placement. The API side is played by writing the
columns the action handlers write (task_state, flavor, image, requests) and an action record.
"""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from filemem.common.guests import PowerState
from filemem.common.resources import MEMORY_MB, VCPU
from filemem.compute.agent_api import ApiUnavailable
from filemem.compute.console import MAX_CONSOLE_BYTES
from filemem.db import api as db_api
from filemem.db import instance_actions
from filemem.db.models import InstanceAction, Migration, utcnow
from filemem.exceptions import HypervisorError
from filemem.placement.embedded import EmbeddedPlacement
from filemem.virt.fake import FakeDriver
from tests.agent_stack import IGNORE_TIMEOUT_WARNING, Stack, build_stack, close_stack

pytestmark = pytest.mark.filterwarnings(IGNORE_TIMEOUT_WARNING)
MIB = 2**20


@pytest.fixture
def stack(tmp_path: Path, embedded_placement: EmbeddedPlacement) -> Iterator[Stack[FakeDriver]]:
    state = tmp_path / "state"
    driver = FakeDriver(state_path=state, backing_dir=tmp_path / "ram", file_backed_memory_mb=2048)
    image = {"name": "img", "kind": "kernel", "kernel_path": "/k1"}
    built = build_stack(tmp_path, state, driver, embedded_placement.client(), image)
    yield built
    close_stack(built)


def memory_file_bytes(stack: Stack[FakeDriver], uuid: str) -> int:
    guest = stack.driver.get_guest(uuid)
    assert guest.memory_file is not None
    return guest.memory_file.path.stat().st_size


def test_pause_and_unpause_with_their_events(stack: Stack[FakeDriver]) -> None:
    uuid = stack.boot()
    assert stack.last_event(uuid) == (
        "create",
        "compute__do_build_and_run_instance",
        "Success",
        stack.hostname,
        False,
    )
    stack.act(uuid, "pause", task_state="pausing")
    stack.converge()
    row = stack.instance(uuid)
    assert (row.vm_state, row.power_state, row.task_state) == ("paused", 3, None)
    assert stack.driver.get_guest(uuid).power_state == PowerState.PAUSED
    assert stack.last_event(uuid) == (
        "pause",
        "compute_pause_instance",
        "Success",
        stack.hostname,
        False,
    )
    stack.converge()  # converged: nothing more happens
    assert [c for c in stack.driver.calls if c[0] == "pause"] == [("pause", uuid)]

    stack.act(uuid, "unpause", task_state="unpausing")
    stack.converge()
    row = stack.instance(uuid)
    assert (row.vm_state, row.power_state, row.task_state) == ("active", 1, None)
    assert stack.last_event(uuid)[:3] == ("unpause", "compute_unpause_instance", "Success")


def test_suspend_resume_and_delete_leave_no_save_image(stack: Stack[FakeDriver]) -> None:
    uuid = stack.boot()
    memory = stack.driver.get_guest(uuid).memory_file
    assert memory is not None
    stack.act(uuid, "suspend", task_state="suspending")
    stack.converge()
    row = stack.instance(uuid)
    assert (row.vm_state, row.power_state, row.task_state) == ("suspended", 4, None)
    assert stack.driver.save_path(uuid).is_file() and not memory.path.exists()
    assert stack.last_event(uuid)[:3] == ("suspend", "compute_suspend_instance", "Success")
    stack.converge()  # a suspended guest is consistent with suspended: nothing to do
    assert stack.instance(uuid).vm_state == "suspended"

    stack.act(uuid, "resume", task_state="resuming")
    stack.converge()
    row = stack.instance(uuid)
    assert (row.vm_state, row.power_state, row.task_state) == ("active", 1, None)
    assert not stack.driver.save_path(uuid).exists()
    assert stack.last_event(uuid)[:3] == ("resume", "compute_resume_instance", "Success")

    stack.act(uuid, "suspend", task_state="suspending")
    stack.converge()
    stack.act(uuid, "delete", task_state="deleting", deleted_requested=True)
    stack.converge()
    assert not stack.driver.save_path(uuid).exists()
    assert stack.driver.list_guests() == []
    with stack.database.reader() as session:
        assert db_api.get_instance(session, uuid) is None
        [delete] = [a for a in instance_actions.list_actions(session, uuid) if a.action == "delete"]
        assert [(e.event, e.result) for e in delete.events] == [
            ("compute_terminate_instance", "Success")
        ]


def test_resize_up_then_revert_follows_the_flavor_columns(stack: Stack[FakeDriver]) -> None:
    uuid = stack.boot()
    assert memory_file_bytes(stack, uuid) == 256 * MIB
    migration = str(uuidlib.uuid4())
    with stack.database.session() as session:
        session.add(
            Migration(
                uuid=migration,
                instance_uuid=uuid,
                migration_type="resize",
                status="migrating",
                source_compute=stack.hostname,
                dest_compute=stack.hostname,
                project_id="p1",
                user_id="u1",
            )
        )
    # The conductor's claims: the new flavor for the instance, the old one for the migration.
    provider = stack.host.tracker.provider_uuid
    stack.host.client.claim(uuid, provider, {MEMORY_MB: 512, VCPU: 2}, "p1", "u1")
    stack.host.client.claim(migration, provider, {MEMORY_MB: 256, VCPU: 1}, "p1", "u1")
    stack.act(
        uuid,
        "resize",
        task_state="resize_migrating",
        flavor_id="2",
        flavor_name="big",
        memory_mb=512,
        vcpus=2,
    )
    stack.converge()
    row = stack.instance(uuid)
    assert (row.vm_state, row.power_state, row.task_state) == ("resized", 1, None)
    guest = stack.driver.get_guest(uuid)
    assert (guest.memory_mb, guest.vcpus) == (512, 2)
    assert memory_file_bytes(stack, uuid) == 512 * MIB
    assert stack.last_event(uuid)[:3] == ("resize", "compute_finish_resize", "Success")
    # Waiting for confirm: consistent, and heal keeps the migration's hold on the old flavor.
    stack.converge()
    assert stack.instance(uuid).vm_state == "resized"
    result = stack.host.manager.heal(keep=stack.loop.desired_uuids())
    assert migration not in result.removed and migration in stack.allocations()

    stack.act(
        uuid,
        "revertResize",
        task_state="resize_reverting",
        flavor_id="1",
        flavor_name="small",
        memory_mb=256,
        vcpus=1,
    )
    stack.converge()
    row = stack.instance(uuid)
    assert (row.vm_state, row.power_state, row.task_state) == ("active", 1, None)
    assert stack.driver.get_guest(uuid).memory_mb == 256
    assert memory_file_bytes(stack, uuid) == 256 * MIB
    assert stack.last_event(uuid)[:3] == (
        "revertResize",
        "compute_finish_revert_resize",
        "Success",
    )
    # The agent's report ends the revert: the API moved the old flavor's allocation back from
    # the migration consumer to the instance, in one write, and closed the record.
    allocations = stack.allocations()
    assert migration not in allocations
    with stack.database.reader() as session:
        record = session.query(Migration).filter_by(uuid=migration).one()
        assert record.status == "reverted"
    assert stack.host.client.get_allocations(uuid)[1] == {provider: {MEMORY_MB: 256, VCPU: 1}}


def test_a_resize_that_does_not_fit_keeps_the_old_flavor_and_errs(stack: Stack[FakeDriver]) -> None:
    uuid = stack.boot()
    stack.driver.capacity_mb = 1024
    stack.act(uuid, "resize", task_state="resize_migrating", memory_mb=2048, flavor_name="huge")
    stack.converge()
    row = stack.instance(uuid)
    assert (row.vm_state, row.task_state, row.power_state) == ("error", None, 1)
    assert "2048 MiB more do not fit" in (row.fault_message or "")
    guest = stack.driver.get_guest(uuid)
    assert (guest.memory_mb, guest.power_state) == (256, PowerState.RUNNING)
    assert stack.last_event(uuid)[:3] + stack.last_event(uuid)[4:] == (
        "resize",
        "compute_finish_resize",
        "Error",
        True,
    )


def test_rebuild_spawns_from_the_new_image_with_the_same_uuid(stack: Stack[FakeDriver]) -> None:
    uuid = stack.boot()
    before = stack.driver.get_guest(uuid)
    with stack.database.session() as session:
        image = db_api.create_image(
            session,
            {"id": str(uuidlib.uuid4()), "name": "img2", "kind": "kernel", "kernel_path": "/k2"},
        )
        new_image = image.id
    stack.act(uuid, "rebuild", task_state="rebuilding", image_id=new_image)
    stack.converge()
    row = stack.instance(uuid)
    assert (row.vm_state, row.power_state, row.task_state) == ("active", 1, None)
    after = stack.driver.get_guest(uuid)
    assert (after.uuid, after.name) == (before.uuid, before.name)
    assert after.domain_id != before.domain_id  # started again: a new memory file
    assert stack.driver.image_of(uuid).kernel == Path("/k2")
    assert stack.last_event(uuid)[:3] == ("rebuild", "compute_rebuild_instance", "Success")

    # A stopped server is rebuilt and left stopped.
    stack.act(uuid, "stop", task_state="powering-off")
    stack.converge()
    stack.act(uuid, "rebuild", task_state="rebuilding", image_id=stack.image_id)
    stack.converge()
    row = stack.instance(uuid)
    assert (row.vm_state, row.power_state, row.task_state) == ("stopped", 4, None)
    assert stack.driver.get_guest(uuid).power_state == PowerState.SHUTDOWN
    assert stack.driver.image_of(uuid).kernel == Path("/k1")


def test_rebuild_of_an_instance_whose_spawn_failed_spawns_and_claims(
    stack: Stack[FakeDriver],
) -> None:
    uuid = stack.boot()
    stack.host.manager.destroy(uuid)  # as after a failed spawn: no guest, no allocation
    with stack.database.session() as session:
        db_api.update_instance(session, uuid, {"vm_state": "error", "power_state": 0})
    stack.act(uuid, "rebuild", task_state="rebuilding")
    stack.converge()
    row = stack.instance(uuid)
    assert (row.vm_state, row.power_state, row.task_state) == ("active", 1, None)
    assert stack.allocations()[uuid] == {MEMORY_MB: 256, VCPU: 1}


def test_trigger_crash_dump_injects_an_nmi_and_clears_the_request(stack: Stack[FakeDriver]) -> None:
    uuid = stack.boot()
    stack.act(uuid, "trigger_crash_dump", crash_dump_requested=True)
    stack.converge()
    assert stack.driver.nmis == [uuid]
    row = stack.instance(uuid)
    assert row.crash_dump_requested is False and row.vm_state == "active"
    assert stack.last_event(uuid)[:3] == (
        "trigger_crash_dump",
        "compute_trigger_crash_dump",
        "Success",
    )
    stack.converge()
    assert stack.driver.nmis == [uuid]  # answered once


def test_console_output_is_the_tail_and_a_newer_request_survives(stack: Stack[FakeDriver]) -> None:
    uuid = stack.boot()
    log = stack.driver.console_log(uuid)
    log.write_bytes(b"old line\n" * 20000 + b"\xff\x00boot done\n")
    requested = utcnow()
    stack.act(uuid, "update", console_requested_at=requested)
    stack.converge()
    row = stack.instance(uuid)
    assert row.console_requested_at is None and row.console_output_at is not None
    output = row.console_output or ""
    assert output.endswith("\ufffdboot done\n") and "\x00" not in output
    assert len(output.encode("utf-8")) <= MAX_CONSOLE_BYTES + 2  # one U+FFFD is 3 bytes
    assert len(output) == MAX_CONSOLE_BYTES - 1  # the NUL is dropped

    # An answer to an older request stores the output but keeps the newer request pending.
    newer = utcnow()
    with stack.database.session() as session:
        db_api.update_instance(session, uuid, {"console_requested_at": newer})
    response = stack.http.put(
        f"/filemem/v1/instances/{uuid}/console",
        json={"output": "late", "requested_at": requested.isoformat() + "+00:00"},
    )
    assert response.status_code == 204
    row = stack.instance(uuid)
    assert row.console_output == "late" and row.console_requested_at == newer


def test_a_failed_pause_ends_the_task_with_an_error_event(stack: Stack[FakeDriver]) -> None:
    uuid = stack.boot()
    stack.driver.fail_next("pause", HypervisorError("pausing guest", "no can do"))
    stack.act(uuid, "pause", task_state="pausing")
    stack.converge()
    row = stack.instance(uuid)
    assert (row.vm_state, row.power_state, row.task_state) == ("active", 1, None)
    assert stack.last_event(uuid) == (
        "pause",
        "compute_pause_instance",
        "Error",
        stack.hostname,
        True,
    )
    with stack.database.reader() as session:
        action = instance_actions.latest_action(session, uuid)
        assert action is not None and action.message == "Error"
        assert "no can do" in (action.events[-1].traceback or "")


def test_an_event_that_cannot_be_recorded_never_fails_the_step(
    stack: Stack[FakeDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    uuid = stack.boot()

    def down(uuid: str, body: dict[str, Any]) -> None:
        raise ApiUnavailable("the events route is down")

    monkeypatch.setattr(stack.loop.api, "event", down)
    stack.act(uuid, "pause", task_state="pausing")
    _, result = stack.loop.run_once(None)
    assert [s.kind for s in result.done] == ["pause"] and not result.failed
    assert stack.instance(uuid).vm_state == "paused"


def test_events_route_stores_nothing_without_an_action(stack: Stack[FakeDriver]) -> None:
    body = {
        "event": "compute_pause_instance",
        "result": "Success",
        "start_time": "2026-12-03T10:00:00Z",
        "finish_time": dt.datetime.now(dt.UTC).isoformat(),
        "traceback": None,
    }
    unknown = str(uuidlib.uuid4())
    assert stack.http.post(f"/filemem/v1/instances/{unknown}/events", json=body).status_code == 204
    with stack.database.reader() as session:
        assert session.query(InstanceAction).filter_by(instance_uuid=unknown).count() == 0
    bad = stack.http.post(
        f"/filemem/v1/instances/{unknown}/events", json={**body, "start_time": "yesterday"}
    )
    assert bad.status_code == 400
    missing = stack.http.put(
        f"/filemem/v1/instances/{unknown}/console",
        json={"output": "", "requested_at": "2026-12-03T10:00:00"},
    )
    assert missing.status_code == 404
