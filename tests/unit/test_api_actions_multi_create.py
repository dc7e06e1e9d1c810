"""os-instance-actions (create/delete recorded, 2.21 for deleted servers) and multi-create
(names, reservation id, launch index, all or nothing against real Placement)."""

from __future__ import annotations

from filemem.db import instance_actions
from tests.unit import servers_app
from tests.unit.servers_app import ServersApp

app = servers_app.app
MISSING = "00000000-0000-0000-0000-000000000000"


def test_create_and_delete_are_recorded_with_the_request_id(app: ServersApp) -> None:
    body = {"server": {"name": "acts", "flavorRef": app.flavor, "imageRef": app.image}}
    created = app.call("POST", "/servers", json=body)
    server_id = created.json()["server"]["id"]
    create_request = created.headers["x-openstack-request-id"]
    deleted = app.call("DELETE", f"/servers/{server_id}")
    assert deleted.status_code == 204
    # the server is scheduled: it stays until its agent destroys it
    listed = app.call("GET", f"/servers/{server_id}/os-instance-actions").json()
    actions = listed["instanceActions"]
    assert [a["action"] for a in actions] == ["delete", "create"]
    assert actions[1]["request_id"] == create_request
    assert actions[0]["request_id"] == deleted.headers["x-openstack-request-id"]
    assert set(actions[0]) == {
        "action", "instance_uuid", "request_id", "user_id", "project_id", "start_time", "message",
    }  # fmt: skip
    assert actions[0]["instance_uuid"] == server_id and actions[0]["message"] is None
    shown = app.call("GET", f"/servers/{server_id}/os-instance-actions/{create_request}")
    assert shown.status_code == 200
    assert shown.json()["instanceAction"]["action"] == "create"
    assert shown.json()["instanceAction"]["events"] == []


def test_events_are_shown_with_their_tracebacks(app: ServersApp) -> None:
    server_id = app.boot("events")
    with app.ctx.database.session() as session:
        action = instance_actions.latest_action(session, server_id)
        assert action is not None
        instance_actions.add_event(
            session, action, "compute_build_and_run_instance", result="Error", traceback="tb"
        )
        request = action.request_id
    shown = app.call("GET", f"/servers/{server_id}/os-instance-actions/{request}").json()
    action_view = shown["instanceAction"]
    assert action_view["message"] == "Error"
    (event,) = action_view["events"]
    assert set(event) == {"event", "start_time", "finish_time", "result", "traceback"}
    assert (event["event"], event["result"], event["traceback"]) == (
        "compute_build_and_run_instance",
        "Error",
        "tb",
    )


def test_a_deleted_server_keeps_its_actions_from_2_21(app: ServersApp) -> None:
    big = app.client.post(
        "/v2.1/flavors", json={"flavor": {"name": "huge", "ram": 8192, "vcpus": 1, "disk": 0}}
    ).json()["flavor"]["id"]
    body = {"server": {"name": "gone", "flavorRef": big, "imageRef": app.image}}
    server_id = app.call("POST", "/servers", json=body).json()["server"]["id"]
    # unscheduled (ERROR, no host): the row goes at once
    assert app.call("DELETE", f"/servers/{server_id}").status_code == 204
    assert app.call("GET", f"/servers/{server_id}").status_code == 404
    path = f"/servers/{server_id}/os-instance-actions"
    assert app.call("GET", path, "2.20").status_code == 404
    listed = app.call("GET", path, "2.21")
    assert listed.status_code == 200
    assert [a["action"] for a in listed.json()["instanceActions"]] == ["delete", "create"]
    request = listed.json()["instanceActions"][0]["request_id"]
    assert app.call("GET", f"{path}/{request}", "2.21").status_code == 200
    assert app.call("GET", f"{path}/{request}", "2.20").status_code == 404


def test_unknown_server_or_action_is_404(app: ServersApp) -> None:
    missing = app.call("GET", f"/servers/{MISSING}/os-instance-actions", "2.21")
    assert missing.status_code == 404
    server_id = app.boot("one")
    unknown = app.call("GET", f"/servers/{server_id}/os-instance-actions/req-nope")
    assert unknown.status_code == 404
    assert unknown.json()["itemNotFound"]["message"] == "Action req-nope not found"


def _multi(app: ServersApp, **extra: object) -> dict[str, object]:
    body = {"name": "many", "flavorRef": app.flavor, "imageRef": app.image, **extra}
    response = app.call("POST", "/servers", json={"server": body})
    assert response.status_code == 202, response.text
    result: dict[str, object] = response.json()
    return result


def _detail(app: ServersApp) -> list[dict[str, object]]:
    servers: list[dict[str, object]] = app.call("GET", "/servers/detail", "2.3").json()["servers"]
    return sorted(servers, key=lambda s: str(s["name"]))


def test_multi_create_names_indexes_and_reservation(app: ServersApp) -> None:
    answer = _multi(app, min_count=2, max_count=3, return_reservation_id=True)
    reservation = answer["reservation_id"]
    assert isinstance(reservation, str) and reservation.startswith("r-")
    servers = _detail(app)
    assert [s["name"] for s in servers] == ["many-1", "many-2", "many-3"]
    assert [s["OS-EXT-SRV-ATTR:launch_index"] for s in servers] == [0, 1, 2]
    assert {s["OS-EXT-SRV-ATTR:reservation_id"] for s in servers} == {reservation}
    assert [s["status"] for s in servers] == ["BUILD"] * 3
    assert app.usage() == 3 * 256
    for server in servers:
        actions = app.call("GET", f"/servers/{server['id']}/os-instance-actions").json()
        assert [a["action"] for a in actions["instanceActions"]] == ["create"]


def test_multi_create_returns_the_first_server(app: ServersApp) -> None:
    answer = _multi(app, min_count="2")
    first = answer["server"]
    assert isinstance(first, dict)
    assert app.show(first["id"], "2.3")["OS-EXT-SRV-ATTR:launch_index"] == 0


def test_multi_create_is_all_or_nothing(app: ServersApp) -> None:
    """Room for four, one taken: asking for four more places none, undoes the claims made,
    and all four are in ERROR with nova's fault."""
    app.boot("before")
    assert app.usage() == 256
    _multi(app, min_count=1, max_count=4)
    servers = [s for s in _detail(app) if str(s["name"]).startswith("many")]
    assert {s["status"] for s in servers} == {"ERROR"} and len(servers) == 4
    for server in servers:
        fault = server["fault"]
        assert isinstance(fault, dict)
        assert fault["message"] == "No valid host was found. There are not enough hosts available."
    assert app.usage() == 256
    # the room is still there for a request that fits
    _multi(app, min_count=3, max_count=3, name="fits")
    fits = [s["status"] for s in _detail(app) if str(s["name"]).startswith("fits")]
    assert fits == ["BUILD"] * 3 and app.usage() == 1024


def test_bad_counts_name_the_field(app: ServersApp) -> None:
    for extra, named in (
        ({"min_count": 0}, "min_count"),
        ({"max_count": "x"}, "max_count"),
        ({"min_count": 3, "max_count": 2}, "min_count must be <= max_count"),
        ({"max_count": 101}, "max_count"),
    ):
        body = {"name": "c", "flavorRef": app.flavor, "imageRef": app.image, **extra}
        response = app.call("POST", "/servers", json={"server": body})
        assert response.status_code == 400, (extra, response.text)
        assert named in response.json()["badRequest"]["message"]
