"""os-migrateLive end to end in-process (real embedded Placement, SQLite): the claims, the
agents' views and events, completion and rollback, and every microversion boundary."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from filemem.db import api as db_api
from filemem.db import server_migrations as migrations_db
from filemem.db.models import Migration, Service
from tests.unit import servers_app
from tests.unit.live_migration_app import (
    CAPABLE,
    active_server,
    allocations,
    event,
    instance_host,
    migrate,
    migration_of,
    register,
    two_hosts,
    usage,
    view_of,
)
from tests.unit.servers_app import ServersApp

app = servers_app.app


def test_scheduled_move_completes(app: ServersApp) -> None:
    dest, dest_rp = two_hosts(app)
    uuid = active_server(app)
    response = migrate(app, uuid, "2.25")
    assert response.status_code == 202, response.text
    row = migration_of(app, uuid)
    assert (row.status, row.source_compute, row.dest_compute) == ("queued", app.host, dest)
    assert row.block_migration is True
    # The source stays counted (by the migration consumer); the destination is claimed.
    assert allocations(app, row.uuid) == {app.provider: 256}
    assert allocations(app, uuid) == {dest_rp: 256}
    assert (usage(app, app.provider), usage(app, dest_rp)) == (256, 256)
    assert app.show(uuid)["status"] == "MIGRATING"
    source = view_of(app, app.host, uuid)
    assert source is not None and source["task_state"] == "migrating"
    assert source["incoming_migration"] is None and row.uuid in source["migration_uuids"]
    assert source["live_migration"] == {
        "migration_uuid": row.uuid,
        "dest_host": dest,
        "dest_address": f"{dest}.example",
        "dest_file_backed_memory_mb": 1024,
        "block_migration": True,
        "dest_prepared": False,
        "force_complete": False,
        "abort": False,
    }
    incoming = view_of(app, dest, uuid)
    assert incoming is not None and incoming["live_migration"] is None
    assert incoming["incoming_migration"] == {"migration_uuid": row.uuid, "source_host": app.host}

    assert event(app, row.uuid, "prepared").json()["status"] == "queued"
    source = view_of(app, app.host, uuid)
    assert source is not None and source["live_migration"]["dest_prepared"] is True
    assert event(app, row.uuid, "started").json()["status"] == "running"
    figures = {"memory_total_bytes": 268435456, "memory_processed_bytes": 1000}
    progress = event(app, row.uuid, "progress", memory_remaining_bytes=5, **figures)
    assert progress.status_code == 200, progress.text
    shown = app.call("GET", f"/servers/{uuid}/migrations/{row.id}", "2.23").json()["migration"]
    assert shown["memory_total_bytes"] == 268435456 and shown["memory_remaining_bytes"] == 5
    assert shown["server_uuid"] == uuid and shown["status"] == "running"

    assert event(app, row.uuid, "completed").json()["status"] == "completed"
    assert instance_host(app, uuid) == (dest, None)
    assert allocations(app, row.uuid) == {}
    assert allocations(app, uuid) == {dest_rp: 256}
    assert (usage(app, app.provider), usage(app, dest_rp)) == (0, 256)
    assert view_of(app, app.host, uuid) is None
    landed = view_of(app, dest, uuid)
    assert landed is not None and landed["incoming_migration"] is None
    assert app.call("GET", f"/servers/{uuid}/migrations", "2.23").json()["migrations"] == []
    # Terminal: later events change nothing.
    late = event(app, row.uuid, "failed", reason="too late")
    assert late.status_code == 200 and late.json()["status"] == "completed"
    assert allocations(app, uuid) == {dest_rp: 256}
    actions = app.call("GET", f"/servers/{uuid}/os-instance-actions").json()["instanceActions"]
    assert actions[0]["action"] == "live-migration"


def test_failed_rolls_back_exactly(app: ServersApp) -> None:
    dest, dest_rp = two_hosts(app)
    uuid = active_server(app)
    assert migrate(app, uuid).status_code == 202
    row = migration_of(app, uuid)
    event(app, row.uuid, "started")
    response = event(app, row.uuid, "failed", reason="libvirt: connection refused")
    assert response.json()["status"] == "failed"
    assert instance_host(app, uuid) == (app.host, None)
    assert allocations(app, uuid) == {app.provider: 256}
    assert allocations(app, row.uuid) == {}
    assert (usage(app, app.provider), usage(app, dest_rp)) == (256, 0)
    assert migration_of(app, uuid).reason == "libvirt: connection refused"
    assert app.show(uuid)["status"] == "ACTIVE"
    assert view_of(app, dest, uuid) is None


def test_cancelled_after_abort(app: ServersApp) -> None:
    _dest, dest_rp = two_hosts(app)
    uuid = active_server(app)
    assert migrate(app, uuid).status_code == 202
    row = migration_of(app, uuid)
    path = f"/servers/{uuid}/migrations/{row.id}"
    assert app.call("DELETE", path, "2.23").status_code == 404
    assert app.call("DELETE", path, "2.24").status_code == 202
    source = view_of(app, app.host, uuid)
    assert source is not None and source["live_migration"]["abort"] is True
    assert event(app, row.uuid, "cancelled", reason="aborted").json()["status"] == "cancelled"
    assert allocations(app, uuid) == {app.provider: 256} and usage(app, dest_rp) == 0
    again = app.call("DELETE", path, "2.24")
    assert again.status_code == 400 and "is cancelled" in again.text


def test_force_complete_only_while_running(app: ServersApp) -> None:
    two_hosts(app)
    uuid = active_server(app)
    assert migrate(app, uuid).status_code == 202
    row = migration_of(app, uuid)
    path = f"/servers/{uuid}/migrations/{row.id}/action"
    body = {"force_complete": None}
    assert app.call("POST", path, "2.21", json=body).status_code == 404
    queued = app.call("POST", path, "2.22", json=body)
    assert queued.status_code == 400 and "is queued" in queued.text
    event(app, row.uuid, "started")
    bad = app.call("POST", path, "2.22", json={"force_complete": 1})
    assert bad.status_code == 400
    assert app.call("POST", path, "2.22", json=body).status_code == 202
    source = view_of(app, app.host, uuid)
    assert source is not None and source["live_migration"]["force_complete"] is True
    missing = app.call("POST", f"/servers/{uuid}/migrations/999/action", "2.22", json=body)
    assert missing.status_code == 404


def test_forced_host_claims_in_one_write_and_still_prechecks(app: ServersApp) -> None:
    dest, dest_rp = two_hosts(app)
    small, _ = register(app, store_free_mb=100)
    uuid = active_server(app)
    refused = migrate(app, uuid, "2.30", host=small, force=True)
    assert refused.status_code == 400 and "100 MiB free" in refused.text
    assert allocations(app, uuid) == {app.provider: 256}
    old = {"host": dest, "block_migration": False, "disk_over_commit": False}
    response = migrate(app, uuid, "2.24", **old)
    assert response.status_code == 202, response.text
    row = migration_of(app, uuid)
    assert (row.dest_compute, row.block_migration) == (dest, False)
    assert allocations(app, row.uuid) == {app.provider: 256}
    assert allocations(app, uuid) == {dest_rp: 256}


def test_named_host_goes_through_the_scheduler(app: ServersApp) -> None:
    dest, dest_rp = two_hosts(app)
    uuid = active_server(app)
    nowhere = migrate(app, uuid, "2.30", force=True)
    assert nowhere.status_code == 400 and "non-provided destination" in nowhere.text
    same = migrate(app, uuid, "2.30", host=app.host)
    assert same.status_code == 400 and "current host" in same.text
    for version in ("2.30", "2.34"):
        unknown = migrate(app, uuid, version, host="nowhere")
        assert unknown.status_code == 400 and "could not be found" in unknown.text
    assert migrate(app, uuid, "2.30", host=dest, force=False).status_code == 202
    assert allocations(app, uuid) == {dest_rp: 256}


def test_refusals_400_before_234_then_recorded(app: ServersApp) -> None:
    register(app, app.host, app.provider, capabilities=None)  # an old agent
    dest, dest_rp = register(app)
    uuid = active_server(app)
    expected = (
        f"cannot live-migrate {uuid} from {app.host} (no file-backed memory support) to "
        f"file-backed host {dest}"
    )
    refused = migrate(app, uuid, "2.30", host=dest)
    assert refused.status_code == 400 and expected in refused.json()["badRequest"]["message"]
    scheduled = migrate(app, uuid, "2.33")
    assert scheduled.status_code == 400 and expected in scheduled.text
    assert migrate(app, uuid, "2.34", host=dest).status_code == 202
    row = migration_of(app, uuid)
    assert row.status == "error" and row.reason is not None and expected in row.reason
    listed = app.call("GET", "/os-migrations?migration_type=live-migration", "2.23").json()
    assert [m["status"] for m in listed["migrations"]] == ["error"]
    assert "reason" not in listed["migrations"][0]  # nova's shape: the event says why
    assert instance_host(app, uuid) == (app.host, None)
    assert allocations(app, uuid) == {app.provider: 256} and usage(app, dest_rp) == 0
    actions = app.call("GET", f"/servers/{uuid}/os-instance-actions").json()["instanceActions"]
    request_id = actions[0]["request_id"]
    action = app.call("GET", f"/servers/{uuid}/os-instance-actions/{request_id}").json()
    events = action["instanceAction"]["events"]
    assert events[0]["result"] == "Error" and expected in events[0]["traceback"]


def test_state_and_busy_are_409(app: ServersApp) -> None:
    two_hosts(app)
    uuid = active_server(app)
    app.set_state(uuid, "stopped")
    assert migrate(app, uuid).status_code == 409
    app.set_state(uuid, "active")
    assert migrate(app, uuid).status_code == 202
    again = migrate(app, uuid)
    assert again.status_code == 409 and "migrating" in again.text


def test_disabled_host_takes_no_guest(app: ServersApp) -> None:
    dest, dest_rp = two_hosts(app)
    uuid = active_server(app)
    body = {"host": dest, "binary": "nova-compute", "disabled_reason": "draining"}
    assert app.call("PUT", "/os-services/disable-log-reason", json=body).status_code == 200
    refused = migrate(app, uuid)
    assert refused.status_code == 400 and "No valid host" in refused.text
    assert allocations(app, uuid) == {app.provider: 256} and usage(app, dest_rp) == 0
    # A boot that does not fit the enabled host is not sent to the disabled one either.
    for _ in range(3):
        app.boot()
    full = app.boot()
    assert app.show(full)["status"] == "ERROR"
    assert usage(app, dest_rp) == 0


def test_lazy_check_fails_a_move_to_a_dead_host(app: ServersApp) -> None:
    dest, dest_rp = two_hosts(app)
    uuid = active_server(app)
    assert migrate(app, uuid).status_code == 202
    row = migration_of(app, uuid)
    long_ago = dt.datetime(2020, 1, 1)
    with app.ctx.database.session() as session:
        service = db_api.get_service_by_host(session, dest)
        assert isinstance(service, Service)
        service.last_seen_at = long_ago
        stored = session.get(Migration, row.id)
        assert stored is not None
        stored.updated_at = long_ago
    assert app.call("GET", f"/servers/{uuid}/migrations", "2.23").json()["migrations"] == []
    failed = migration_of(app, uuid)
    assert failed.status == "failed" and failed.reason == f"destination host {dest} is down"
    assert allocations(app, uuid) == {app.provider: 256} and usage(app, dest_rp) == 0
    assert instance_host(app, uuid) == (app.host, None)


def test_event_route_errors(app: ServersApp) -> None:
    two_hosts(app)
    uuid = active_server(app)
    assert event(app, "6f2b0c3e-9a55-4f39-a7ef-5c3d3c1f0a11", "started").status_code == 404
    assert migrate(app, uuid).status_code == 202
    row = migration_of(app, uuid)
    assert event(app, row.uuid, "failed").status_code in (400, 422)
    assert event(app, row.uuid, "exploded").status_code in (400, 422)
    negative = event(app, row.uuid, "progress", memory_total_bytes=-1)
    assert negative.status_code in (400, 422)


def test_registration_stores_contract_fields(app: ServersApp) -> None:
    host, _ = register(app, store_free_mb=777, version="9.9")
    with app.ctx.database.reader() as session:
        service = db_api.get_service_by_host(session, host)
        assert service is not None
        assert (service.store_free_mb, service.version) == (777, "9.9")
        assert service.capabilities == CAPABLE
        assert service.migration_address == f"{host}.example"
    bad = app.client.put(
        f"/filemem/v1/services/{host}",
        json={"provider_uuid": "6f2b0c3e-9a55-4f39-a7ef-5c3d3c1f0a11", "capabilities": "yes"},
    )
    assert bad.status_code in (400, 422)


def test_delete_service(app: ServersApp) -> None:
    empty, empty_rp = register(app)
    uuid = active_server(app)
    services = app.call("GET", "/os-services").json()["services"]
    ids = {s["host"]: s["id"] for s in services}
    busy = app.call("DELETE", f"/os-services/{ids[app.host]}")
    assert busy.status_code == 409 and "hosting instances" in busy.text
    assert app.call("DELETE", f"/os-services/{ids[empty]}").status_code == 204
    assert app.placement.get_resource_provider(empty_rp) is None
    assert app.call("DELETE", f"/os-services/{ids[empty]}").status_code == 404
    assert app.call("DELETE", "/os-services/abc").status_code == 400
    assert allocations(app, uuid) == {app.provider: 256}
    with app.ctx.database.reader() as session:
        assert migrations_db.live_in_progress_on(session, app.host) == []


def test_a_concurrent_move_of_the_allocation_is_a_409(app: ServersApp) -> None:
    """The first write away from the source is at the generation the prechecks read: a
    request racing another never makes a second copy of the source allocation."""
    from filemem.conductor import live_migration as live

    dest, dest_rp = two_hosts(app)
    uuid = active_server(app)
    conductor = live.LiveMigrationConductor(
        app.ctx.database, app.ctx.placement, app.ctx.scheduler, app.ctx.down_after
    )
    real = conductor._source_allocation

    def stale(instance: object, provider: str) -> tuple[int | None, dict[str, dict[str, int]]]:
        generation, held = real(instance, provider)  # type: ignore[arg-type]
        # Another API process moves the allocation meanwhile (same amounts, new generation).
        for memory_mb in (128, 256):
            resources = {"MEMORY_MB": memory_mb, "VCPU": 1}
            app.placement.claim(uuid, app.provider, resources, owner[0], owner[1])
        return generation, held

    with app.ctx.database.reader() as session:
        instance = db_api.get_instance(session, uuid)
        assert instance is not None
        session.expunge(instance)
    owner = (instance.project_id, instance.user_id)
    conductor._source_allocation = stale  # type: ignore[method-assign]
    ask = live.Request(dest, False, False, True, "req-1", "p", "u")
    try:
        conductor.start(instance, ask)
    except live.InstanceBusy as exc:
        assert "changed while it was being migrated" in str(exc)
    else:
        raise AssertionError("a stale generation was written over")
    assert allocations(app, uuid) == {app.provider: 256} and usage(app, dest_rp) == 0


def test_agent_reports_do_not_end_a_live_migration(app: ServersApp) -> None:
    dest, _ = two_hosts(app)
    uuid = active_server(app)
    assert migrate(app, uuid).status_code == 202
    report = {"vm_state": "active", "task_state": None, "power_state": 1}
    response = app.client.patch(f"/filemem/v1/instances/{uuid}", json=report)
    assert response.status_code == 200, response.text
    assert instance_host(app, uuid) == (app.host, "migrating")
    hypervisors = app.call("GET", "/os-hypervisors/detail").json()["hypervisors"]
    shown = {h["hypervisor_hostname"]: h["host_ip"] for h in hypervisors}
    assert shown[dest] == f"{dest}.example"


def _agent_client(app: ServersApp) -> TestClient:
    """The agent routes, where token `host:NAME` is the credential of host NAME."""
    from filemem.api.app import _routes_only
    from filemem.api.auth import TokenAuthMiddleware
    from filemem.api.identity import Caller
    from filemem.api.microversion import MicroversionMiddleware

    def host_credential(token: str) -> Caller | None:
        host = token.removeprefix("host:")
        return Caller("agent", "service", host=host, kind="host_credential")

    agents = _routes_only()
    agents.state.ctx = app.ctx
    agents.add_middleware(MicroversionMiddleware)
    agents.add_middleware(
        TokenAuthMiddleware,
        token=servers_app.TOKEN,
        public_paths=(),
        authenticators=[host_credential],
    )
    return TestClient(agents)


def test_events_from_a_host_that_is_neither_end_are_409(app: ServersApp) -> None:
    """A host credential (the Caller's host) may speak only for the source or destination."""
    dest, _ = two_hosts(app)
    uuid = active_server(app)
    assert migrate(app, uuid).status_code == 202
    row = migration_of(app, uuid)
    path = f"/filemem/v1/migrations/{row.uuid}/events"
    with _agent_client(app) as client:
        intruder = client.post(path, json={"event": "started"}, headers={"X-Auth-Token": "host:x"})
        # agent_authz refuses a host that is neither end before the handler sees the event.
        assert intruder.status_code == 403 and "host x" in intruder.text
        ours = client.post(
            path, json={"event": "prepared"}, headers={"X-Auth-Token": f"host:{dest}"}
        )
        assert ours.status_code == 200 and migration_of(app, uuid).dest_prepared is True


def test_the_source_records_its_event_after_the_destination_completed(app: ServersApp) -> None:
    """The destination may report completion first; the source's own action event still
    lands, but the source may no longer report the instance's state."""
    two_hosts(app)
    uuid = active_server(app)
    assert migrate(app, uuid).status_code == 202
    row = migration_of(app, uuid)
    assert event(app, row.uuid, "completed").json()["status"] == "completed"
    source = {"X-Auth-Token": f"host:{app.host}"}
    step = {
        "event": "compute_live_migration",
        "result": "Success",
        "start_time": "2026-01-01T00:00:00Z",
        "finish_time": "2026-01-01T00:00:01Z",
    }
    with _agent_client(app) as client:
        recorded = client.post(f"/filemem/v1/instances/{uuid}/events", json=step, headers=source)
        assert recorded.status_code == 204, recorded.text
        report = client.patch(
            f"/filemem/v1/instances/{uuid}", json={"vm_state": "active"}, headers=source
        )
        assert report.status_code == 403, report.text
        stranger = client.post(
            f"/filemem/v1/instances/{uuid}/events", json=step, headers={"X-Auth-Token": "host:x"}
        )
        assert stranger.status_code == 403
    actions = app.call("GET", f"/servers/{uuid}/os-instance-actions").json()["instanceActions"]
    shown = app.call("GET", f"/servers/{uuid}/os-instance-actions/{actions[0]['request_id']}")
    names = [e["event"] for e in shown.json()["instanceAction"]["events"]]
    assert "compute_live_migration" in names, names


def test_lazy_check_source_down_only_before_it_started(app: ServersApp) -> None:
    _, dest_rp = two_hosts(app)
    uuid = active_server(app)
    assert migrate(app, uuid).status_code == 202
    row = migration_of(app, uuid)

    def age(status: str | None = None) -> None:
        long_ago = dt.datetime(2020, 1, 1)
        with app.ctx.database.session() as session:
            service = db_api.get_service_by_host(session, app.host)
            assert service is not None
            service.last_seen_at = long_ago
            stored = session.get(Migration, row.id)
            assert stored is not None
            stored.updated_at = long_ago
            if status is not None:
                stored.status = status

    # Running: the guest may be on the destination already; only the agents can tell.
    age("running")
    listed = app.call("GET", f"/servers/{uuid}/migrations", "2.23").json()["migrations"]
    assert [m["status"] for m in listed] == ["running"]
    age("queued")
    assert app.call("GET", f"/servers/{uuid}/migrations", "2.23").json()["migrations"] == []
    failed = migration_of(app, uuid)
    assert failed.status == "failed" and failed.reason == f"source host {app.host} is down"
    assert allocations(app, uuid) == {app.provider: 256} and usage(app, dest_rp) == 0


def test_a_broken_scheduler_leaves_the_source_allocation_where_it_was(app: ServersApp) -> None:
    from filemem.conductor import live_migration as live

    class Broken:
        def select_and_claim(self, spec: object) -> object:
            raise RuntimeError("scheduler exploded")

    _, dest_rp = two_hosts(app)
    uuid = active_server(app)
    conductor = live.LiveMigrationConductor(
        app.ctx.database,
        app.ctx.placement,
        Broken(),  # type: ignore[arg-type]
        app.ctx.down_after,
    )
    with app.ctx.database.reader() as session:
        instance = db_api.get_instance(session, uuid)
        assert instance is not None
        session.expunge(instance)
    ask = live.Request(None, False, False, True, "req-2", "p", "u")
    try:
        conductor.start(instance, ask)
    except RuntimeError as exc:
        assert "exploded" in str(exc)
    else:
        raise AssertionError("the scheduler's failure was swallowed")
    assert allocations(app, uuid) == {app.provider: 256} and usage(app, dest_rp) == 0
    assert instance_host(app, uuid) == (app.host, None)
