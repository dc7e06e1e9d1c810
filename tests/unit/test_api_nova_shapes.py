"""The shapes and codes Tempest holds filemem to (issue 20): create, rebuild, flavors, v2.0."""

from __future__ import annotations

import pytest

from filemem.api.handlers.admin_password import PASSWORD_LENGTH
from tests.unit import servers_app
from tests.unit.servers_app import ServersApp

app = servers_app.app
CREATE_KEYS = {"id", "links", "OS-DCF:diskConfig", "security_groups", "adminPass"}


def test_create_answers_novas_keys_with_a_generated_password(app: ServersApp) -> None:
    body = {"server": {"name": "vm", "flavorRef": app.flavor, "imageRef": app.image}}
    response = app.call("POST", "/servers", json=body)
    assert response.status_code == 202, response.text
    server = response.json()["server"]
    assert set(server) == CREATE_KEYS
    assert len(server["adminPass"]) == PASSWORD_LENGTH
    assert response.headers["x-compute-request-id"] == response.headers["x-openstack-request-id"]


def test_create_takes_novas_optional_fields_and_hints(app: ServersApp) -> None:
    body = {
        "server": {
            "name": "vm",
            "flavorRef": app.flavor,
            "imageRef": app.image,
            "adminPass": "given-secret",
            "accessIPv4": "192.0.2.7",
            "accessIPv6": "2001:db8::7",
            "OS-DCF:diskConfig": "AUTO",
        },
        "os:scheduler_hints": {"same_host": ["whatever"], "some_unknown_hint": 1},
    }
    response = app.call("POST", "/servers", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["server"]["adminPass"] == "given-secret"


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"server": {"accessIPv4": "192.0.2"}}, "accessIPv4"),
        ({"server": {"accessIPv6": "192.0.2.7"}}, "accessIPv6"),
        ({"os:scheduler_hints": {"group": "5b8e3a4c-1f0e-4f55-9a4e-3c0f3f3c1a11"}}, "group"),
    ],
)
def test_create_refuses_bad_addresses_and_server_groups(
    app: ServersApp, extra: dict[str, dict[str, object]], named: str
) -> None:
    body: dict[str, dict[str, object]] = {
        "server": {"name": "vm", "flavorRef": app.flavor, "imageRef": app.image}
    }
    for key, value in extra.items():
        body.setdefault(key, {}).update(value)
    response = app.call("POST", "/servers", json=body)
    assert response.status_code == 400 and named in response.text, response.text


def test_no_password_when_the_option_is_off(app: ServersApp) -> None:
    app.ctx.enable_instance_password = False
    body = {"server": {"name": "vm", "flavorRef": app.flavor, "imageRef": app.image}}
    response = app.call("POST", "/servers", json=body)
    assert set(response.json()["server"]) == CREATE_KEYS - {"adminPass"}


def test_rebuild_answers_the_2_1_shape(app: ServersApp) -> None:
    server_id = app.boot()
    app.set_state(server_id, "active")
    action = {"rebuild": {"imageRef": app.image, "adminPass": "again"}}
    response = app.call("POST", f"/servers/{server_id}/action", json=action)
    assert response.status_code == 202, response.text
    server = response.json()["server"]
    assert server["adminPass"] == "again" and server["status"] == "REBUILD"
    assert not [key for key in server if key.startswith(("OS-EXT-", "OS-SRV-USG"))]


def test_flavor_create_takes_novas_parameter_types(app: ServersApp) -> None:
    flavor = {"name": "typed", "ram": "512", "vcpus": "1", "disk": 0, "id": 4242}
    flavor["os-flavor-access:is_public"] = "False"
    response = app.call("POST", "/flavors", json={"flavor": flavor})
    assert response.status_code == 200, response.text
    made = response.json()["flavor"]
    assert (made["id"], made["ram"], made["os-flavor-access:is_public"]) == ("4242", 512, False)
    refused = {"name": "bad", "ram": "-1", "vcpus": 1, "disk": 0}
    response = app.call("POST", "/flavors", json={"flavor": refused})
    assert response.status_code == 400 and "ram" in response.text


@pytest.mark.parametrize(("action", "code"), [("restore", 409), ("forceDelete", 400)])
def test_unsupported_actions_find_the_server_first(app: ServersApp, action: str, code: int) -> None:
    missing = "0b4ec5ad-7d0b-4d6c-9f6e-2b4b0c8d6a11"
    assert app.call("POST", f"/servers/{missing}/action", json={action: None}).status_code == 404
    server_id = app.boot()
    response = app.call("POST", f"/servers/{server_id}/action", json={action: None})
    assert response.status_code == code, response.text


def test_v2_0_is_listed_and_served_as_2_1(app: ServersApp) -> None:
    versions = app.client.get("/").json()["versions"]
    assert [v["id"] for v in versions] == ["v2.0", "v2.1"]
    legacy = app.client.get("/v2/").json()["version"]
    assert legacy["id"] == "v2.0" and legacy["links"][0]["href"].endswith("/v2/")
    headers = {"OpenStack-API-Version": "compute 2.37"}
    flavors = app.client.get("/v2/flavors", headers=headers)
    assert flavors.status_code == 200 and flavors.headers["openstack-api-version"] == (
        "compute 2.1"
    )


def test_filemem_figures_are_beside_os_hypervisors(app: ServersApp) -> None:
    [nova] = app.call("GET", "/os-hypervisors/detail").json()["hypervisors"]
    assert not [key for key in nova if key.startswith("filemem:")]
    [own] = app.client.get("/filemem/v1/hypervisors").json()["hypervisors"]
    assert own["id"] == nova["id"] and own["provider_uuid"] == app.provider
    assert own["file_backed_memory"] is True and own["file_backed_memory_mb"] == 1024
