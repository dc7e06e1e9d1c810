"""filemem-api over real HTTP: version documents, token auth, flavors, extra specs, images."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.functional.api_fixtures import (
    ApiEnv,
    ApiProcess,
    api_conf,
    api_env,
    make_flavor,
    make_image,
    register_host,
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("api-basic")) as running:
        yield running


def test_version_documents_are_nova_shaped_and_public(env: ApiEnv) -> None:
    versions = httpx.get(f"{env.url}/").json()["versions"]
    assert [(v["id"], v["status"], v["version"], v["min_version"]) for v in versions] == [
        ("v2.0", "SUPPORTED", "", ""),
        ("v2.1", "CURRENT", "2.37", "2.1"),
    ]
    assert versions[1]["links"] == [{"rel": "self", "href": f"{env.url}/v2.1/"}]
    legacy = httpx.get(f"{env.url}/v2/").json()["version"]
    assert legacy["links"][0] == {"rel": "self", "href": f"{env.url}/v2/"}
    for path in ("/v2.1", "/v2.1/"):
        version = httpx.get(f"{env.url}{path}").json()["version"]
        assert version["id"] == "v2.1" and version["min_version"] == "2.1"
        assert version["media-types"][0]["type"].endswith("version=2.1")


def test_identity_v3_version_document_is_public(env: ApiEnv) -> None:
    assert httpx.get(f"{env.url}/identity/v3").json()["version"]["id"].startswith("v3.")
    values = httpx.get(f"{env.url}/identity").json()["versions"]["values"]
    assert values[0]["status"] == "stable"


@pytest.mark.parametrize("headers", [{}, {"X-Auth-Token": "wrong"}, {"X-Auth-Token": ""}])
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v2.1/servers"),
        ("POST", "/v2.1/flavors"),
        ("GET", "/filemem/v1/hosts/h/instances"),
        ("GET", "/v2.1/no-such-thing"),
    ],
)
def test_missing_or_wrong_token_is_401(
    env: ApiEnv, headers: dict[str, str], method: str, path: str
) -> None:
    response = httpx.request(method, f"{env.url}{path}", headers=headers, content=b"{not json")
    assert response.status_code == 401
    assert response.json() == {"unauthorized": {"code": 401, "message": "Authentication required"}}


def test_openapi_document_is_served(env: ApiEnv) -> None:
    document = httpx.get(f"{env.url}/openapi.json").json()
    assert "/v2.1/servers" in document["paths"]
    assert "/filemem/v1/hosts/{host}/instances" in document["paths"]


def test_flavor_create_list_show_delete(env: ApiEnv) -> None:
    created = env.compute(
        "POST",
        "/flavors",
        json={"flavor": {"name": "crud.small", "ram": 512, "vcpus": 2, "disk": 1, "id": "crud-1"}},
    )
    assert created.status_code == 200, created.text
    flavor = created.json()["flavor"]
    assert {k: flavor[k] for k in ("id", "name", "ram", "vcpus", "disk")} == {
        "id": "crud-1",
        "name": "crud.small",
        "ram": 512,
        "vcpus": 2,
        "disk": 1,
    }
    assert flavor["os-flavor-access:is_public"] is True
    assert flavor["links"][0]["href"].endswith("/v2.1/flavors/crud-1")

    listed = env.compute("GET", "/flavors").json()["flavors"]
    assert {"id": "crud-1", "name": "crud.small", "links": flavor["links"]} in listed
    detail = env.compute("GET", "/flavors/detail").json()["flavors"]
    assert any(f["id"] == "crud-1" and f["ram"] == 512 for f in detail)
    assert env.compute("GET", "/flavors/crud-1").json()["flavor"] == flavor

    again = env.compute(
        "POST",
        "/flavors",
        json={"flavor": {"name": "crud.small", "ram": 512, "vcpus": 2, "disk": 1}},
    )
    assert again.status_code == 409
    assert "already exists" in again.json()["conflictingRequest"]["message"]

    assert env.compute("DELETE", "/flavors/crud-1").status_code == 202
    missing = env.compute("GET", "/flavors/crud-1")
    assert missing.status_code == 404
    assert missing.json()["itemNotFound"]["message"] == "Flavor crud-1 could not be found."


def test_flavor_without_id_gets_a_uuid_and_filters_work(env: ApiEnv) -> None:
    flavor_id = make_flavor(env, "auto-id", ram=2048)
    assert len(flavor_id) == 36
    big = env.compute("GET", "/flavors/detail", params={"minRam": 2048}).json()["flavors"]
    assert flavor_id in [f["id"] for f in big]
    assert all(f["ram"] >= 2048 for f in big)


def test_extra_specs_crud(env: ApiEnv) -> None:
    flavor_id = make_flavor(env, "specs")
    base = f"/flavors/{flavor_id}/os-extra_specs"
    assert env.compute("GET", base).json() == {"extra_specs": {}}
    posted = env.compute(
        "POST", base, json={"extra_specs": {"hw:mem_page_size": "large", "k": "v"}}
    )
    assert posted.status_code == 200
    assert posted.json() == {"extra_specs": {"hw:mem_page_size": "large", "k": "v"}}
    assert env.compute("GET", f"{base}/k").json() == {"k": "v"}
    assert env.compute("PUT", f"{base}/k", json={"k": "w"}).json() == {"k": "w"}
    mismatch = env.compute("PUT", f"{base}/k", json={"other": "w"})
    assert mismatch.status_code == 400
    assert "mismatch" in mismatch.json()["badRequest"]["message"]
    assert env.compute("DELETE", f"{base}/k").status_code == 200
    assert env.compute("GET", f"{base}/k").status_code == 404
    assert env.compute("DELETE", f"{base}/k").status_code == 404
    assert env.compute("GET", base).json() == {"extra_specs": {"hw:mem_page_size": "large"}}
    bad = env.compute("POST", base, json={"extra_specs": {"hw:mem_page_size": "gigantic"}})
    assert bad.status_code == 400
    assert env.compute("GET", "/flavors/nope/os-extra_specs").status_code == 404


def test_images_register_list_show_and_id_in_filter(env: ApiEnv) -> None:
    first, second = make_image(env, "img-a"), make_image(env, "img-b")
    shown = env.http.get(f"/image/v2/images/{first}").json()
    assert {k: shown[k] for k in ("id", "name", "status", "filemem_kind")} == {
        "id": first,
        "name": "img-a",
        "status": "active",
        "filemem_kind": "kernel",
    }
    assert env.compute("GET", f"/images/{first}").json()["image"]["name"] == "img-a"
    listed = env.compute("GET", "/images").json()["images"]
    assert {first, second} <= {image["id"] for image in listed}
    asked = env.http.get("/image/v2/images", params={"id": f"in:{first},{second}"}).json()
    assert sorted(image["id"] for image in asked["images"]) == sorted([first, second])
    assert env.compute("GET", "/images/00000000-0000-0000-0000-000000000000").status_code == 404
    assert env.compute("GET", "/images/not-a-uuid").status_code == 404


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("relative/vmlinuz", "absolute"),
        ("/boot/../etc/passwd", "'..'"),
        # Outside image_dirs the answer never tells whether a file exists.
        ("/nonexistent/vmlinuz", "not below a directory of [api] image_dirs"),
        ("/dev/null", "not below a directory of [api] image_dirs"),
        # Inside, what is wrong with the file.
        ("{files}/nonexistent.vmlinuz", "No such file"),
        ("{files}", "not a regular file"),
    ],
)
def test_image_paths_are_checked(env: ApiEnv, path: str, reason: str) -> None:
    body = {"kernel_path": path.format(files=env.files)}
    response = env.http.post("/image/v2/images", json={"name": "bad", **body})
    assert response.status_code == 400, response.text
    assert reason in response.json()["badRequest"]["message"]


def test_image_files_must_lie_below_image_dirs(env: ApiEnv) -> None:
    outside = env.files.parent / "outside.vmlinuz"
    outside.write_bytes(b"\0" * 64)
    sneaky = env.files / "sneaky.vmlinuz"
    sneaky.symlink_to(outside)
    for path in (outside, sneaky, Path("/etc/hostname")):
        response = env.http.post("/image/v2/images", json={"name": "bad", "kernel_path": str(path)})
        assert response.status_code == 400, response.text
        assert "[api] image_dirs" in response.json()["badRequest"]["message"]


def test_services_and_hypervisors_report_placement_capacity(env: ApiEnv) -> None:
    register_host(env, "hv-1", memory_mb=8192, vcpus=4, disk_gb=20, file_backed=True)
    services = env.compute("GET", "/os-services").json()["services"]
    service = next(s for s in services if s["host"] == "hv-1")
    assert (service["binary"], service["status"], service["state"]) == (
        "filemem-compute",
        "enabled",
        "up",
    )
    hypervisors = env.compute("GET", "/os-hypervisors").json()["hypervisors"]
    summary = next(h for h in hypervisors if h["hypervisor_hostname"] == "hv-1")
    assert summary == {
        "id": service["id"],
        "hypervisor_hostname": "hv-1",
        "state": "up",
        "status": "enabled",
    }
    shown = env.compute("GET", f"/os-hypervisors/{summary['id']}").json()["hypervisor"]
    assert (shown["memory_mb"], shown["memory_mb_used"], shown["vcpus"], shown["local_gb"]) == (
        8192,
        0,
        4,
        20,
    )
    assert shown["hypervisor_type"] == "QEMU" and not any(k.startswith("filemem:") for k in shown)
    [own] = [
        h
        for h in env.http.get("/filemem/v1/hypervisors").json()["hypervisors"]
        if h["id"] == summary["id"]
    ]
    assert own["file_backed_memory"] is True and own["hypervisor_hostname"] == "hv-1"
    assert env.compute("GET", "/os-hypervisors/999999").status_code == 404

    disabled = env.compute(
        "PUT",
        "/os-services/disable-log-reason",
        json={"host": "hv-1", "binary": "filemem-compute", "disabled_reason": "maintenance"},
    )
    assert disabled.json()["service"]["status"] == "disabled"
    services = env.compute("GET", "/os-services", params={"host": "hv-1"}).json()["services"]
    assert services[0]["status"] == "disabled"
    assert services[0]["disabled_reason"] == "maintenance"
    env.compute("PUT", "/os-services/enable", json={"host": "hv-1", "binary": "filemem-compute"})


def test_api_refuses_to_start_without_an_admin_token(tmp_path: Path) -> None:
    api = ApiProcess(tmp_path, api_conf(tmp_path, "http://127.0.0.1:9", token=""))
    result = api.run()
    assert result.returncode == 1
    assert "[api] admin_token" in result.stderr
    # The schema can still be created without one (e.g. by a deployment tool).
    synced = api.run("--db-sync-only")
    assert synced.returncode == 0, synced.stderr
    assert (tmp_path / "filemem.sqlite").is_file()
