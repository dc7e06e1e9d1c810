"""Two agents on FakeDrivers live-migrate a guest as the contract says: the destination prepares,
the source runs the migration in the background and reports it, both converge after a crash."""

from __future__ import annotations

import json
import time
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from filemem import conf as filemem_conf
from filemem.common import agent_wire
from filemem.common.guests import Image, PowerState
from filemem.common.resources import MIB, guest_resources
from filemem.compute.agent_api import AgentApiClient
from filemem.compute.host import ComputeHost
from filemem.compute.live_migration import dest_marker, source_marker
from filemem.compute.reconcile.loop import ReconcileLoop
from filemem.compute.reconcile.plan import (
    INTERRUPTED,
    DesiredInstance,
    IncomingMigration,
    LiveMigrationSpec,
)
from filemem.compute.resource_sync import ResourceSyncLoop
from filemem.exceptions import GuestNotFound, MigrationNotSupported
from filemem.placement.embedded import EmbeddedPlacement
from filemem.virt.fake import FakeDriver
from filemem.virt.fake_migration import FakeLiveMigration
from tests.unit.test_agent_fake_driver import FakeAgentApi, building

DEST_ADDRESS = "192.0.2.12"


@dataclass
class Host:
    driver: FakeDriver
    api: FakeAgentApi
    host: ComputeHost
    loop: ReconcileLoop

    def converge(self) -> None:
        self.loop.run_once(None)

    def events(self, mid: str) -> list[str]:
        return [e["event"] for e in self.api.migration_events.get(mid, [])]

    def restart(self) -> None:
        """A new agent process: nothing in memory, libvirt and the files as they were."""
        self.loop = ReconcileLoop(self.host, self.api, wait=0)


def make_host(tmp_path: Path, placement: EmbeddedPlacement, name: str, fbm: int = 2048) -> Host:
    state = tmp_path / name / "state"
    config = tmp_path / f"{name}.conf"
    config.write_text(
        f"[DEFAULT]\nhost = {name}-{uuidlib.uuid4().hex[:6]}\nstate_path = {state}\n"
        f"ram_allocation_ratio = 1.0\n[libvirt]\nvirt_type = qemu\nfile_backed_memory = {fbm}\n"
    )
    conf = filemem_conf.load(config_files=[str(config)])
    driver = FakeDriver(
        state_path=state, backing_dir=tmp_path / name / "ram", file_backed_memory_mb=fbm
    )
    host = ComputeHost.from_conf(conf, driver=driver, client=placement.client())
    host.tracker.sync()
    api = FakeAgentApi(placement=placement.client())
    return Host(driver, api, host, ReconcileLoop(host, api, wait=0))


@pytest.fixture
def hosts(tmp_path: Path, embedded_placement: EmbeddedPlacement) -> Iterator[tuple[Host, Host]]:
    source = make_host(tmp_path, embedded_placement, "src")
    dest = make_host(tmp_path, embedded_placement, "dst")
    source.driver.peers[DEST_ADDRESS] = dest.driver
    yield source, dest
    for handle in source.driver.migrations.values():
        assert isinstance(handle, FakeLiveMigration)
        handle.fail("test over")  # no-op for the ended ones; frees the runner threads
    source.loop.executor.migrations.wait_all(5)


def running_guest(source: Host) -> DesiredInstance:
    """Scheduled as the API does (its claim on the source), then spawned there."""
    want = building()
    assert source.api.placement is not None
    provider = source.host.tracker.provider_uuid
    resources = guest_resources(want.flavor.memory_mb, want.flavor.vcpus)
    source.api.placement.claim(want.uuid, provider, resources, want.project_id, want.user_id)
    source.api.desired[want.uuid] = want
    source.converge()
    return replace(want, vm_state="active", task_state=None)


def migrating(want: DesiredInstance, mid: str, **changes: Any) -> DesiredInstance:
    lm = LiveMigrationSpec(mid, "dst", DEST_ADDRESS, 2048, dest_prepared=True)
    return replace(want, task_state="migrating", live_migration=replace(lm, **changes))


def incoming(want: DesiredInstance, mid: str) -> DesiredInstance:
    return replace(want, task_state="migrating", incoming_migration=IncomingMigration(mid, "src"))


def wait_for(condition: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_live_migration_end_to_end(hosts: tuple[Host, Host]) -> None:
    source, dest = hosts
    want = running_guest(source)
    mid = str(uuidlib.uuid4())

    # The destination prepares (once) and never spawns.
    dest.api.desired[want.uuid] = incoming(want, mid)
    dest.converge()
    dest.converge()
    assert dest.events(mid) == ["prepared"]
    assert dest_marker(dest.driver.instance_dir(want.uuid), mid).exists()
    assert ("spawn", want.uuid) not in dest.driver.calls
    assert dest.api.events[want.uuid][0]["event"] == "compute_pre_live_migration"

    # Not prepared yet in the source's view: it waits.
    source.api.desired[want.uuid] = migrating(want, mid, dest_prepared=False)
    source.converge()
    assert source.events(mid) == []

    # Prepared: started, and the pass returns while the migration runs.
    source.api.desired[want.uuid] = migrating(want, mid)
    source.converge()
    assert source.events(mid) == ["started"]
    handle = source.driver.migrations[want.uuid]
    assert isinstance(handle, FakeLiveMigration)
    assert handle.target.address == DEST_ADDRESS and handle.target.file_backed_memory_mb == 2048
    assert source.loop.executor.migrations.facts(want, None).running_here
    source.converge()  # other work goes on; the running migration is not started again
    assert len(source.driver.migrations) == 1 and source.events(mid) == ["started"]
    handle.report(128 * MIB)
    [progress] = [e for e in source.api.migration_events[mid] if e["event"] == "progress"]
    assert progress["memory_processed_bytes"] == 128 * MIB
    assert progress["memory_remaining_bytes"] == 128 * MIB

    handle.complete()
    wait_for(lambda: "completed" in source.events(mid))
    source.loop.executor.migrations.wait_all(5)
    assert source.api.events[want.uuid][-1]["event"] == "compute_live_migration"
    assert source.api.events[want.uuid][-1]["result"] == "Success"
    assert not source.driver.instance_dir(want.uuid).exists()
    with pytest.raises(GuestNotFound):
        source.driver.get_guest(want.uuid)

    # The API has not caught up: the source neither respawns nor reports the guest lost.
    reports = len(source.api.reports.get(want.uuid, []))
    source.converge()
    assert len(source.api.reports.get(want.uuid, [])) == reports
    assert [c for c in source.driver.calls if c[0] == "spawn"] == [("spawn", want.uuid)]

    # The destination finds the guest running persistently with no job: completed.
    moved = dest.driver.get_guest(want.uuid)
    assert moved.power_state == PowerState.RUNNING and moved.file_backed
    dest.converge()
    assert dest.events(mid) == ["prepared", "completed"]
    assert dest.api.events[want.uuid][-1]["event"] == "compute_post_live_migration_at_destination"


def test_abort_is_carried_out_once_and_reported_cancelled(hosts: tuple[Host, Host]) -> None:
    source, _ = hosts
    want = running_guest(source)
    mid = str(uuidlib.uuid4())
    source.api.desired[want.uuid] = migrating(want, mid)
    source.converge()
    handle = source.driver.migrations[want.uuid]
    assert isinstance(handle, FakeLiveMigration)
    source.api.desired[want.uuid] = migrating(want, mid, abort=True)
    source.converge()
    assert handle.aborted
    wait_for(lambda: "cancelled" in source.events(mid))
    [cancelled] = [e for e in source.api.migration_events[mid] if e["event"] == "cancelled"]
    assert "canceled by client" in cancelled["reason"]
    assert source.driver.get_guest(want.uuid).power_state == PowerState.RUNNING
    source.loop.executor.migrations.wait_all(5)
    source.converge()  # the API has not caught up yet: no second migration
    assert source.events(mid) == ["started", "cancelled"]
    assert not source_marker(source.driver.instance_dir(want.uuid), mid).exists()


def test_force_complete_reaches_the_migration(hosts: tuple[Host, Host]) -> None:
    source, _ = hosts
    want = running_guest(source)
    mid = str(uuidlib.uuid4())
    source.api.desired[want.uuid] = migrating(want, mid)
    source.converge()
    handle = source.driver.migrations[want.uuid]
    assert isinstance(handle, FakeLiveMigration) and not handle.forced
    source.api.desired[want.uuid] = migrating(want, mid, force_complete=True)
    source.converge()
    assert handle.forced
    handle.complete()
    wait_for(lambda: "completed" in source.events(mid))


def test_libvirt_failure_and_refusal_are_reported_failed(hosts: tuple[Host, Host]) -> None:
    source, _ = hosts
    want = running_guest(source)
    mid = str(uuidlib.uuid4())
    source.driver.fail_next("live_migrate", MigrationNotSupported("disk-image guests: not yet"))
    source.api.desired[want.uuid] = migrating(want, mid)
    source.converge()
    assert source.events(mid) == ["started", "failed"]
    assert source.api.migration_events[mid][-1]["reason"] == "disk-image guests: not yet"
    assert source.api.events[want.uuid][-1]["result"] == "Error"
    source.converge()  # never retried by this agent
    assert source.events(mid) == ["started", "failed"]

    other = str(uuidlib.uuid4())
    source.api.desired[want.uuid] = migrating(want, other)
    source.converge()
    source.driver.migrations[want.uuid].wait(0)
    handle = source.driver.migrations[want.uuid]
    assert isinstance(handle, FakeLiveMigration)
    handle.fail("internal error: qemu unexpectedly closed the monitor")
    wait_for(lambda: "failed" in source.events(other))
    assert source.api.migration_events[other][-1]["reason"].startswith("internal error")
    assert source.driver.get_guest(want.uuid).power_state == PowerState.RUNNING


def test_a_restarted_source_fails_the_interrupted_migration(hosts: tuple[Host, Host]) -> None:
    source, _ = hosts
    want = running_guest(source)
    mid = str(uuidlib.uuid4())
    source.api.desired[want.uuid] = migrating(want, mid)
    source.converge()
    source.restart()
    source.converge()  # libvirt's job still runs: wait for it
    assert source.events(mid) == ["started"]
    source.driver.jobs.discard(want.uuid)  # the job died with the old agent's connection
    source.converge()
    assert source.events(mid) == ["started", "failed"]
    assert source.api.migration_events[mid][-1]["reason"] == INTERRUPTED
    assert not source_marker(source.driver.instance_dir(want.uuid), mid).exists()


def test_a_restarted_destination_reports_the_guest_that_arrived(hosts: tuple[Host, Host]) -> None:
    source, dest = hosts
    want = running_guest(source)
    mid = str(uuidlib.uuid4())
    dest.api.desired[want.uuid] = incoming(want, mid)
    dest.converge()
    source.api.desired[want.uuid] = migrating(want, mid)
    source.converge()
    dest.converge()  # the migration runs: nothing to do
    assert dest.events(mid) == ["prepared"]
    handle = source.driver.migrations[want.uuid]
    assert isinstance(handle, FakeLiveMigration)
    handle.complete()
    dest.restart()
    dest.converge()
    assert dest.events(mid) == ["prepared", "completed"]


def test_registration_sends_the_contract_fields(hosts: tuple[Host, Host]) -> None:
    source, _ = hosts
    source.loop.heartbeat()
    details = source.api.details[-1]
    assert details is not None
    assert details["capabilities"] == {"file_backed_memory": True, "live_migration": True}
    assert details["version"] == "0.1.0"
    assert details["migration_address"] == source.host.conf.host
    assert isinstance(details["store_free_mb"], int) and details["store_free_mb"] >= 0
    source.driver.libvirt_version = (3, 9, 0)  # too old for file-backed guests
    source.loop.heartbeat()
    capabilities = source.api.details[-1]["capabilities"]  # type: ignore[index]
    assert capabilities == {"file_backed_memory": False, "live_migration": True}


def test_the_client_puts_the_fields_in_the_request_body() -> None:
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        if "capabilities" in body and len(bodies) > 1:
            message = "Additional properties are not allowed (capabilities was unexpected)"
            return httpx.Response(400, json={"badRequest": {"message": message, "code": 400}})
        service = {"id": 1, "host": "h1", "binary": "filemem-compute", "disabled": False}
        return httpx.Response(200, json={"service": service, "ram_allocation_ratio": None})

    client = AgentApiClient("http://api", "token")
    mock = httpx.Client(base_url="http://api", transport=httpx.MockTransport(handler))
    client._clients, client._http = [mock], mock
    details = {
        "capabilities": {"file_backed_memory": True, "live_migration": True},
        "version": "0.1.0",
        "migration_address": "10.0.0.1",
        "store_free_mb": 900,
    }
    assert client.register("h1", str(uuidlib.uuid4()), 1024, details) is None
    assert {k: bodies[0][k] for k in details} == details
    assert bodies[0]["file_backed_memory_mb"] == 1024
    # An API without the fields yet (400, additional properties): registered without them.
    client.register("h1", str(uuidlib.uuid4()), 1024, details)
    assert "capabilities" not in bodies[-1] and bodies[-1]["binary"] == "filemem-compute"

    sent: list[tuple[str, dict[str, Any]]] = []

    def events(request: httpx.Request) -> httpx.Response:
        sent.append((request.url.path, json.loads(request.content)))
        if "unknown" in request.url.path:  # the API's answer for a migration it does not know
            return httpx.Response(404, json={}, headers={agent_wire.GONE_HEADER: "migration"})
        return httpx.Response(200, json={})

    mock = httpx.Client(base_url="http://api", transport=httpx.MockTransport(events))
    client._clients, client._http = [mock], mock
    client.migration_event("m1", {"event": "started"})
    client.migration_event("unknown", {"event": "progress"})  # gone: nothing to report to
    assert sent[0] == ("/filemem/v1/migrations/m1/events", {"event": "started"})


def test_the_destination_pre_creates_the_overlay_of_a_disk_image_guest(
    hosts: tuple[Host, Host],
) -> None:
    _, dest = hosts
    disk = Image(kind="disk", disk=Path("/images/base.qcow2"))
    want = building(image=disk, vm_state="active", task_state="migrating")
    mid = str(uuidlib.uuid4())
    dest.api.desired[want.uuid] = incoming(want, mid)
    dest.converge()
    assert dest.events(mid) == ["prepared"]
    assert (dest.driver.instance_dir(want.uuid) / "disk.qcow2").exists()


def test_heal_on_the_source_never_claims_for_the_migrating_guest(
    hosts: tuple[Host, Host],
) -> None:
    """The conductor moved the source allocation to the migration consumer and claimed the
    destination for the instance: a heal claim here would replace the destination's."""
    source, _ = hosts
    want = running_guest(source)
    mid = str(uuidlib.uuid4())
    client, provider = source.host.client, source.host.tracker.provider_uuid
    held = client.get_provider_allocations(provider)[want.uuid]
    assert client.delete_allocations(want.uuid)
    client.claim(mid, provider, held, "p1", "u1")
    source.api.desired[want.uuid] = migrating(want, mid, dest_prepared=False)
    source.converge()
    sync = ResourceSyncLoop.from_conf(
        source.host, keep=source.loop.desired_uuids, moving=source.loop.migrating_uuids
    )
    assert sync.run_once().error is None
    allocations = client.get_provider_allocations(provider)
    assert want.uuid not in allocations and allocations[mid] == held


def test_a_guest_that_comes_back_keeps_its_new_directory(hosts: tuple[Host, Host]) -> None:
    """The destination may report completion and the guest be sent back before the source's
    migration thread cleans up: that late cleanup must not remove the new incoming directory
    (seen on the 3-host cloud: the next prepare's marker and console log vanished)."""
    source, _ = hosts
    want = running_guest(source)
    mid, back = str(uuidlib.uuid4()), str(uuidlib.uuid4())
    source.api.desired[want.uuid] = migrating(want, mid)
    source.converge()
    handle = source.driver.migrations[want.uuid]
    assert isinstance(handle, FakeLiveMigration)
    runner = source.loop.executor.migrations
    runner.prepare_incoming(want, back, {"event": "prepared"})
    handle.complete()
    runner.wait_all(5)
    assert "completed" in source.events(mid) and source.events(back) == ["prepared"]
    workdir = source.driver.instance_dir(want.uuid)
    assert dest_marker(workdir, back).exists()
    assert not source_marker(workdir, mid).exists()


def test_the_destination_writes_the_config_drive_again(hosts: tuple[Host, Host]) -> None:
    """Block migration copies no read-only disk: the destination makes the drive itself."""
    _, dest = hosts
    want = building(
        vm_state="active", task_state="migrating", config_drive=True, hostname="moved-vm"
    )
    mid = str(uuidlib.uuid4())
    dest.api.desired[want.uuid] = incoming(want, mid)
    dest.converge()
    assert dest.events(mid) == ["prepared"]
    drive = dest.driver.config_drive_path(want.uuid)
    assert b"moved-vm" in drive.read_bytes()  # meta_data.json's hostname, stored plainly
