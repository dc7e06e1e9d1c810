"""Server metadata and server tags (2.26): nova's bodies, codes, limits and state rules."""

from __future__ import annotations

import pytest

from filemem.common import states
from tests.unit import servers_app
from tests.unit.servers_app import ServersApp

app = servers_app.app
MISSING = "00000000-0000-0000-0000-000000000000"


@pytest.fixture
def active(app: ServersApp) -> str:
    server_id = app.boot("meta", metadata={"a": "1"})
    app.set_state(server_id, states.ACTIVE)
    return server_id


def test_metadata_calls(app: ServersApp, active: str) -> None:
    meta = f"/servers/{active}/metadata"
    assert app.call("GET", meta).json() == {"metadata": {"a": "1"}}
    merged = app.call("POST", meta, json={"metadata": {"b": "2"}})
    assert (merged.status_code, merged.json()) == (200, {"metadata": {"a": "1", "b": "2"}})
    replaced = app.call("PUT", meta, json={"metadata": {"c": "3"}})
    assert replaced.json() == {"metadata": {"c": "3"}}
    assert app.call("GET", f"{meta}/c").json() == {"meta": {"c": "3"}}
    item = app.call("PUT", f"{meta}/d", json={"meta": {"d": "4"}})
    assert (item.status_code, item.json()) == (200, {"meta": {"d": "4"}})
    assert app.call("DELETE", f"{meta}/c").status_code == 204
    assert app.show(active)["metadata"] == {"d": "4"}


@pytest.mark.parametrize(
    ("method", "suffix", "body", "status", "message"),
    [
        ("GET", "/missing", None, 404, "Metadata item was not found"),
        ("DELETE", "/missing", None, 404, "Metadata item was not found"),
        ("PUT", "/k", {"meta": {"other": "v"}}, 400, "Request body and URI mismatch"),
        ("PUT", "/k", {"meta": {"k": "v", "j": "w"}}, 400, "meta"),
        ("PUT", "/k", {"meta": {}}, 400, "meta"),
        ("POST", "", {"metadata": {"k": "x" * 256}}, 400, "metadata.k"),
        ("POST", "", {"metadata": {"bad/key": "v"}}, 400, "metadata.bad/key"),
        ("POST", "", {"metadata": {"k": 1}}, 400, "metadata.k"),
        ("PUT", "", {"meta": {"k": "v"}}, 400, "field/attribute metadata"),
    ],
)
def test_bad_metadata_requests(
    app: ServersApp,
    active: str,
    method: str,
    suffix: str,
    body: object,
    status: int,
    message: str,
) -> None:
    response = app.call(method, f"/servers/{active}/metadata{suffix}", json=body)
    assert response.status_code == status, response.text
    assert message in str(response.json())


def test_metadata_quota_is_nova_403(app: ServersApp, active: str) -> None:
    items = {f"k{i}": "v" for i in range(128)}
    assert app.call("PUT", f"/servers/{active}/metadata", json={"metadata": items}).is_success
    response = app.call("POST", f"/servers/{active}/metadata", json={"metadata": {"one": "more"}})
    assert response.status_code == 403
    assert response.json()["forbidden"]["message"] == (
        "Maximum number of metadata items exceeds 128"
    )
    body: dict[str, object] = {"name": "q", "flavorRef": app.flavor, "imageRef": app.image}
    body["metadata"] = {f"k{i}": "v" for i in range(129)}
    assert app.call("POST", "/servers", json={"server": body}).status_code == 403


def test_metadata_changes_need_a_settled_server(app: ServersApp) -> None:
    building = app.boot("building")
    response = app.call("POST", f"/servers/{building}/metadata", json={"metadata": {"x": "y"}})
    assert response.status_code == 409
    assert "while it is in vm_state building" in response.json()["conflictingRequest"]["message"]
    app.set_state(building, states.ACTIVE, states.REBOOTING)
    response = app.call("DELETE", f"/servers/{building}/metadata/x")
    assert response.status_code == 404  # the key is checked first, as in nova
    response = app.call("PUT", f"/servers/{building}/metadata", json={"metadata": {}})
    assert "task_state rebooting" in response.json()["conflictingRequest"]["message"]


def test_metadata_of_a_missing_server_is_404(app: ServersApp) -> None:
    assert app.call("GET", f"/servers/{MISSING}/metadata").status_code == 404


def test_tags_calls(app: ServersApp, active: str) -> None:
    tags = f"/servers/{active}/tags"
    v = "2.26"
    assert app.call("GET", tags, v).json() == {"tags": []}
    added = app.call("PUT", f"{tags}/blue", v)
    assert added.status_code == 201
    assert added.headers["Location"].endswith(f"/v2.1/servers/{active}/tags/blue")
    assert app.call("PUT", f"{tags}/blue", v).status_code == 204
    assert app.call("GET", f"{tags}/blue", v).status_code == 204
    missing = app.call("GET", f"{tags}/red", v)
    assert missing.status_code == 404
    assert missing.json()["itemNotFound"]["message"] == f"Server {active} has no tag 'red'"
    replaced = app.call("PUT", tags, v, json={"tags": ["x", "y", "x"]})
    assert replaced.json() == {"tags": ["x", "y"]}
    assert app.show(active, v)["tags"] == ["x", "y"]
    assert app.call("DELETE", f"{tags}/x", v).status_code == 204
    gone = app.call("DELETE", f"{tags}/x", v)
    assert gone.json()["itemNotFound"]["message"] == f"Instance {active} has no tag 'x'"
    assert app.call("DELETE", tags, v).status_code == 204
    assert app.call("GET", tags, v).json() == {"tags": []}


def test_tag_limits(app: ServersApp, active: str) -> None:
    tags = f"/servers/{active}/tags"
    too_many = app.call("PUT", tags, "2.26", json={"tags": [f"t{i}" for i in range(51)]})
    assert too_many.status_code == 400 and "tags" in too_many.json()["badRequest"]["message"]
    for bad in (["a,b"], ["x" * 61], [""]):
        response = app.call("PUT", tags, "2.26", json={"tags": bad})
        assert response.status_code == 400 and "tags.0" in response.text
    long_tag = app.call("PUT", f"{tags}/{'x' * 61}", "2.26")
    assert long_tag.status_code == 400 and "is invalid" in long_tag.text
    comma = app.call("PUT", f"{tags}/a,b", "2.26")
    assert comma.status_code == 400 and "without characters '/' and ','" in comma.text
    full = [f"t{i}" for i in range(50)]
    assert app.call("PUT", tags, "2.26", json={"tags": full}).is_success
    over = app.call("PUT", f"{tags}/one-more", "2.26")
    assert over.status_code == 400
    assert "exceeded the per-server limit 50" in over.json()["badRequest"]["message"]


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("PUT", ""), ("DELETE", ""), ("GET", "/t"), ("PUT", "/t"), ("DELETE", "/t")],
)
def test_tag_routes_are_not_found_below_2_26(
    app: ServersApp, active: str, method: str, suffix: str
) -> None:
    body = {"tags": ["a"]} if (method, suffix) == ("PUT", "") else None
    response = app.call(method, f"/servers/{active}/tags{suffix}", "2.25", json=body)
    assert response.status_code == 404
    assert response.json() == {
        "itemNotFound": {"message": "The resource could not be found.", "code": 404}
    }


def test_tag_changes_need_a_settled_vm_state(app: ServersApp) -> None:
    building = app.boot("building")
    response = app.call("PUT", f"/servers/{building}/tags/x", "2.26")
    assert response.status_code == 409
    assert "Cannot 'update tag'" in response.json()["conflictingRequest"]["message"]


def test_list_filters_by_tags_from_2_26(app: ServersApp) -> None:
    ids = {}
    for name, tags in (("ab", ["a", "b"]), ("a", ["a"]), ("c", ["c"]), ("none", [])):
        ids[name] = app.boot(name)
        app.set_state(ids[name], states.ACTIVE)
        app.call("PUT", f"/servers/{ids[name]}/tags", "2.26", json={"tags": tags})

    def names(params: dict[str, str], version: str = "2.26") -> set[str]:
        servers = app.call("GET", "/servers", version, params=params).json()["servers"]
        return {server["name"] for server in servers}

    assert names({"tags": "a,b"}) == {"ab"}
    assert names({"tags-any": "b,c"}) == {"ab", "c"}
    assert names({"not-tags": "a,b"}) == {"a", "c", "none"}
    assert names({"not-tags-any": "a,c"}) == {"none"}
    assert names({"tags": "a", "not-tags-any": "b"}) == {"a"}
    # below 2.26 nova ignores the tag filters
    assert names({"tags": "a,b"}, "2.25") == {"ab", "a", "c", "none"}
