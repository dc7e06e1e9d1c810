"""Server bodies and PUT /servers/{id} as nova shapes them at each microversion up to 2.37."""

from __future__ import annotations

import pytest

from filemem.common import states
from tests.unit import servers_app
from tests.unit.servers_app import ServersApp

app = servers_app.app

EXT_2_3 = {
    "OS-EXT-SRV-ATTR:reservation_id",
    "OS-EXT-SRV-ATTR:launch_index",
    "OS-EXT-SRV-ATTR:hostname",
    "OS-EXT-SRV-ATTR:kernel_id",
    "OS-EXT-SRV-ATTR:ramdisk_id",
    "OS-EXT-SRV-ATTR:root_device_name",
    "OS-EXT-SRV-ATTR:user_data",
}


@pytest.mark.parametrize(
    ("version", "present", "absent"),
    [
        ("2.1", {"key_name"}, EXT_2_3 | {"locked", "host_status", "description", "tags"}),
        ("2.3", EXT_2_3, {"locked", "host_status", "description", "tags"}),
        ("2.9", EXT_2_3 | {"locked"}, {"host_status", "description", "tags"}),
        ("2.16", {"locked", "host_status"}, {"description", "tags"}),
        ("2.19", {"host_status", "description"}, {"tags"}),
        ("2.26", {"description", "tags"}, set()),
        ("2.37", EXT_2_3 | {"locked", "host_status", "description", "tags"}, set()),
    ],
)
def test_each_field_appears_at_its_microversion(
    app: ServersApp, version: str, present: set[str], absent: set[str]
) -> None:
    server_id = app.boot("fields", networks="none" if version == "2.37" else None)
    for server in (
        app.show(server_id, version),
        app.call("GET", "/servers/detail", version).json()["servers"][0],
    ):
        assert present <= set(server), sorted(present - set(server))
        assert not absent & set(server), sorted(absent & set(server))


def test_values_of_the_versioned_fields(app: ServersApp) -> None:
    server_id = app.boot("Web Server_1.example", version="2.19", description="the web")
    server = app.show(server_id, "2.26")
    assert server["OS-EXT-SRV-ATTR:hostname"] == "web-server-1-example"
    assert server["OS-EXT-SRV-ATTR:launch_index"] == 0
    assert server["OS-EXT-SRV-ATTR:reservation_id"].startswith("r-")
    assert len(server["OS-EXT-SRV-ATTR:reservation_id"]) == 10
    assert (server["locked"], server["host_status"]) == (False, "UP")
    assert (server["description"], server["tags"], server["key_name"]) == ("the web", [], None)
    assert server["OS-EXT-SRV-ATTR:host"] == app.host and server["progress"] == 0


def test_host_status_follows_the_service(app: ServersApp) -> None:
    server_id = app.boot("hs")
    disabled = app.call(
        "PUT", "/os-services/disable", json={"host": app.host, "binary": "filemem-compute"}
    )
    assert disabled.status_code == 200, disabled.text
    assert app.show(server_id, "2.16")["host_status"] == "MAINTENANCE"
    listed = app.call("GET", "/servers/detail", "2.16").json()["servers"]
    assert [s["host_status"] for s in listed] == ["MAINTENANCE"]


def test_an_unscheduled_server_has_an_empty_host_status_and_a_fault(app: ServersApp) -> None:
    big = app.client.post(
        "/v2.1/flavors", json={"flavor": {"name": "big", "ram": 8192, "vcpus": 1, "disk": 0}}
    ).json()["flavor"]["id"]
    response = app.call(
        "POST",
        "/servers",
        json={"server": {"name": "big", "flavorRef": big, "imageRef": app.image}},
    )
    server = app.show(response.json()["server"]["id"], "2.16")
    assert (server["status"], server["host_status"]) == ("ERROR", "")
    assert server["fault"]["message"].startswith("No valid host was found.")
    # nova shows progress only while a server is building or running, never in ERROR
    assert "progress" not in server


def test_update_name_and_description(app: ServersApp) -> None:
    server_id = app.boot("before")
    response = app.call(
        "PUT",
        f"/servers/{server_id}",
        "2.19",
        json={"server": {"name": "after", "description": "now described"}},
    )
    assert response.status_code == 200, response.text
    updated = response.json()["server"]
    assert (updated["name"], updated["description"]) == ("after", "now described")
    # nova's PUT answer before 2.75 leaves out AZ, key_name, OS-EXT-* and host_status
    assert "OS-EXT-STS:vm_state" not in updated and "key_name" not in updated
    assert "host_status" not in updated and updated["locked"] is False
    shown = app.show(server_id, "2.19")
    assert (shown["name"], shown["description"]) == ("after", "now described")
    cleared = app.call(
        "PUT", f"/servers/{server_id}", "2.19", json={"server": {"description": None}}
    )
    assert cleared.json()["server"]["description"] is None
    # nova records no action for an update
    actions = app.call("GET", f"/servers/{server_id}/os-instance-actions").json()
    assert [a["action"] for a in actions["instanceActions"]] == ["create"]


@pytest.mark.parametrize(
    ("version", "server", "named"),
    [
        ("2.18", {"description": "x"}, "server.description was unexpected"),
        ("2.19", {"description": "x" * 256}, "server.description"),
        ("2.1", {"name": ""}, "server.name"),
        ("2.1", {"name": None}, "server.name"),
        ("2.1", {"hostname": "h"}, "server.hostname was unexpected"),
    ],
)
def test_bad_updates_name_the_field(
    app: ServersApp, version: str, server: dict[str, object], named: str
) -> None:
    server_id = app.boot("bad-update")
    response = app.call("PUT", f"/servers/{server_id}", version, json={"server": server})
    assert response.status_code == 400, response.text
    assert named in response.json()["badRequest"]["message"]


def test_update_of_a_missing_server_is_404(app: ServersApp) -> None:
    response = app.call(
        "PUT", "/servers/00000000-0000-0000-0000-000000000000", json={"server": {"name": "x"}}
    )
    assert response.status_code == 404


def test_description_on_create_is_refused_below_2_19(app: ServersApp) -> None:
    body = {"name": "d", "flavorRef": app.flavor, "imageRef": app.image, "description": "x"}
    response = app.call("POST", "/servers", "2.18", json={"server": body})
    assert response.status_code == 400
    assert "server.description was unexpected" in response.json()["badRequest"]["message"]


@pytest.mark.parametrize(
    ("version", "networks", "status"),
    [
        ("2.1", None, 202),
        ("2.1", "none", 202),
        ("2.1", [], 202),
        ("2.1", [{"uuid": "00000000-0000-0000-0000-000000000000"}], 400),
        ("2.36", "auto", 202),
        ("2.37", "none", 202),
        ("2.37", None, 400),
        ("2.37", "auto", 400),
        ("2.37", [], 400),
        ("2.37", [{"port": "00000000-0000-0000-0000-000000000000"}], 400),
    ],
)
def test_networks_by_microversion(
    app: ServersApp, version: str, networks: object, status: int
) -> None:
    body: dict[str, object] = {"name": "n", "flavorRef": app.flavor, "imageRef": app.image}
    if networks is not None:
        body["networks"] = networks
    response = app.call("POST", "/servers", version, json={"server": body})
    assert response.status_code == status, response.text
    if status == 400:
        message = response.json()["badRequest"]["message"]
        assert "networks" in message and 'use networks "none"' in message


def test_locked_shows_the_lock(app: ServersApp) -> None:
    server_id = app.boot("locked")
    app.set_state(server_id, states.ACTIVE)
    with app.ctx.database.session() as session:
        from filemem.db import api as db_api

        db_api.update_instance(session, server_id, {"locked_by": "admin"}, notify=False)
    assert app.show(server_id, "2.9")["locked"] is True
    assert "locked" not in app.show(server_id, "2.8")
