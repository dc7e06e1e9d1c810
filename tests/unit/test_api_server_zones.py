"""Servers in availability zones: create's availability_zone (and an admin's zone:host),
OS-EXT-AZ:availability_zone, and boots kept in the zone through Placement member_of, with
both scheduler strategies."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from filemem.conductor.hosts import host_source
from filemem.scheduler import Scheduler, SchedulerSettings
from tests.unit import servers_app
from tests.unit.servers_app import ServersApp

app = servers_app.app


@pytest.fixture(params=["cache", "placement"])
def zoned(request: pytest.FixtureRequest, app: ServersApp) -> tuple[ServersApp, str]:
    """The app's host in the default zone, and a second host alone in zone az1."""
    if request.param == "placement":
        hosts = host_source(app.ctx.database, dt.timedelta(seconds=60))
        app.ctx.use_scheduler(
            Scheduler(app.placement, hosts, SchedulerSettings(strategy="placement"))
        )
    other, _provider = servers_app.register_host(app.client, app.placement, 1024)
    created = app.call(
        "POST", "/os-aggregates", json={"aggregate": {"name": "a1", "availability_zone": "az1"}}
    )
    assert created.status_code == 200, created.text
    agg_id = created.json()["aggregate"]["id"]
    added = app.call("POST", f"/os-aggregates/{agg_id}/action", json={"add_host": {"host": other}})
    assert added.status_code == 200, added.text
    return app, other


def boot(app: ServersApp, zone: str | None) -> dict[str, Any]:
    extra = {"availability_zone": zone} if zone is not None else {}
    return app.show(app.boot(**extra))


def test_a_zone_keeps_boots_on_its_hosts(zoned: tuple[ServersApp, str]) -> None:
    app, other = zoned
    for _ in range(3):
        server = boot(app, "az1")
        assert server["OS-EXT-SRV-ATTR:host"] == other, server.get("fault")
        assert server["OS-EXT-AZ:availability_zone"] == "az1"
    # The default zone is every host in no zone's aggregate (member_of=!in:...).
    server = boot(app, "nova")
    assert server["OS-EXT-SRV-ATTR:host"] == app.host
    assert server["OS-EXT-AZ:availability_zone"] == "nova"
    # az1's host is full now (four 256 MiB servers on 1024 MiB): az1 has no room left.
    boot(app, "az1")
    full = boot(app, "az1")
    assert full["status"] == "ERROR" and "No valid host" in full["fault"]["message"]


def test_unknown_zone_and_host_are_refused(zoned: tuple[ServersApp, str]) -> None:
    app, _other = zoned
    body = {"name": "vm", "flavorRef": app.flavor, "imageRef": app.image}
    for zone, text in (
        ("nowhere", "The requested availability zone is not available"),
        ("az1:nohost", "Compute host nohost could not be found."),
    ):
        response = app.call(
            "POST", "/servers", json={"server": {**body, "availability_zone": zone}}
        )
        assert response.status_code == 400, response.text
        assert response.json()["badRequest"]["message"] == text


def test_an_admin_forces_a_host(zoned: tuple[ServersApp, str]) -> None:
    app, other = zoned
    assert boot(app, f"az1:{other}")["OS-EXT-SRV-ATTR:host"] == other
    assert boot(app, f"nova::{app.host}")["OS-EXT-SRV-ATTR:host"] == app.host
    # A forced host outside the zone asked for: nothing qualifies.
    assert boot(app, f"nova:{other}")["status"] == "ERROR"
