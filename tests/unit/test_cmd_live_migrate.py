"""`filemem server migrate` and `filemem host drain` against the in-process API: what they
send, what they report, and their outcomes when a guest cannot move."""

from __future__ import annotations

from fastapi.testclient import TestClient

from filemem.api import create_app
from filemem.cmd import live_migrate as cli
from filemem.cmd.compute_api import ComputeApi
from tests.unit import servers_app
from tests.unit.live_migration_app import (
    active_server,
    allocations,
    event,
    migration_of,
    two_hosts,
)
from tests.unit.servers_app import ServersApp

app = servers_app.app


def compute_api(app: ServersApp) -> ComputeApi:
    """The CLI's client, speaking to the in-process API."""
    client = ComputeApi("http://testserver", servers_app.TOKEN)
    client._http = TestClient(
        create_app(app.ctx),
        base_url="http://testserver/v2.1",
        headers={"X-Auth-Token": servers_app.TOKEN, "OpenStack-API-Version": "compute 2.1"},
    )
    return client


def test_migrate_without_wait_reports_the_queued_move(app: ServersApp) -> None:
    dest, dest_rp = two_hosts(app)
    uuid = active_server(app)
    client = compute_api(app)
    server = client.find("server", uuid)
    outcome = cli.migrate_one(client, server, dest, wait=False, quiet=True)
    assert (outcome.status, outcome.source, outcome.dest) == ("queued", app.host, dest)
    assert allocations(app, uuid) == {dest_rp: 256}
    # Followed to its end once the agents report: the failure's reason comes along.
    row = migration_of(app, uuid)
    event(app, row.uuid, "failed", reason="destination could not prepare")
    final = cli.follow(client, uuid, {"id": row.id, "status": "queued"}, 10, quiet=True)
    assert final["status"] == "failed"
    assert cli.failure_reason(client, uuid) == "destination could not prepare"


def test_drain_reports_what_could_not_move(app: ServersApp) -> None:
    moving = active_server(app)
    stopped = active_server(app)
    app.set_state(stopped, "stopped")
    client = compute_api(app)
    # No other host: the scheduler finds none (a 400 at 2.30), and the stopped guest is skipped.
    outcomes = {o.server: o for o in cli.drain(client, app.host, timeout=5, quiet=True)}
    assert outcomes[stopped].status == "skipped"
    assert "only ACTIVE or PAUSED" in outcomes[stopped].reason
    assert outcomes[moving].status == "refused"
    assert "No valid host was found." in outcomes[moving].reason
    assert not any(o.moved for o in outcomes.values())
    services = client.call("GET", f"/os-services?host={app.host}")["services"]
    assert (services[0]["status"], services[0]["disabled_reason"]) == ("disabled", "draining")
