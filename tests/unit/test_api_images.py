"""Images: glance v2 at /image (list, filters, sort, pages, show, register) and nova's proxy."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.api_app import Api


def glance(api: Api, path: str = "", **params: Any) -> Any:
    response = api.call("GET", f"/image/v2/images{path}", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_version_documents_point_at_v2(api: Api) -> None:
    root = api.client.get("/image", headers={"X-Auth-Token": ""})
    assert root.status_code == 300
    (version,) = root.json()["versions"]
    assert version["status"] == "CURRENT"
    assert version["links"][0]["href"].endswith("/image/v2/")
    assert api.client.get("/image/versions").json() == root.json()


def test_glance_image_shape(api: Api) -> None:
    image_id = api.make_image("kern", size=100)
    shown = glance(api, f"/{image_id}")
    assert {k: shown[k] for k in ("id", "name", "status", "visibility", "size")} == {
        "id": image_id,
        "name": "kern",
        "status": "active",
        "visibility": "public",
        "size": 100,
    }
    assert (shown["disk_format"], shown["container_format"]) == ("aki", "bare")
    assert (shown["min_disk"], shown["min_ram"], shown["protected"], shown["os_hidden"]) == (
        0,
        0,
        False,
        False,
    )
    assert shown["tags"] == [] and shown["created_at"].endswith("Z")
    assert shown["self"] == f"/v2/images/{image_id}"
    assert shown["file"] == f"/v2/images/{image_id}/file"
    assert shown["schema"] == "/v2/schemas/image"
    assert shown["kernel_path"].endswith("kern.vmlinuz") and shown["cmdline"] == "console=ttyS0"
    assert shown["filemem_kind"] == "kernel" and "disk_path" not in shown


def test_glance_show_unknown_is_404(api: Api) -> None:
    for ident in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        response = api.call("GET", f"/image/v2/images/{ident}")
        assert response.status_code == 404
        assert f"No image found with ID {ident}" in response.text


def test_glance_filters_sort_and_pages(api: Api) -> None:
    ids = {name: api.make_image(name) for name in ("b", "a", "c")}
    listed = glance(api)
    assert [i["name"] for i in listed["images"]] == ["c", "a", "b"]  # newest first
    assert listed["first"] == "/v2/images" and "next" not in listed
    assert listed["schema"] == "/v2/schemas/images"
    assert [i["id"] for i in glance(api, name="a")["images"]] == [ids["a"]]
    assert len(glance(api, status="active")["images"]) == 3
    assert glance(api, status="queued")["images"] == []
    assert glance(api, visibility="private")["images"] == []
    assert len(glance(api, visibility="all")["images"]) == 3
    assert [i["name"] for i in glance(api, sort="name:asc")["images"]] == ["a", "b", "c"]
    by_key = glance(api, sort_key="name", sort_dir="desc")["images"]
    assert [i["name"] for i in by_key] == ["c", "b", "a"]
    first = glance(api, sort="name:asc", limit="2")
    assert [i["name"] for i in first["images"]] == ["a", "b"]
    assert first["next"] == f"/v2/images?sort=name%3Aasc&limit=2&marker={ids['b']}"
    rest = glance(api, sort="name:asc", limit="2", marker=ids["b"])
    assert [i["name"] for i in rest["images"]] == ["c"] and "next" not in rest
    asked = glance(api, id=f"in:{ids['a']},{ids['c']}")["images"]
    assert sorted(i["id"] for i in asked) == sorted([ids["a"], ids["c"]])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "x"}, "limit param must be an integer"),
        ({"limit": "-1"}, "limit param must be positive"),
        ({"sort": "owner:asc"}, "Invalid sort key: owner"),
        ({"sort": "name:up"}, "Invalid sort direction: up"),
        ({"sort": "name", "sort_key": "id"}, "Old and new sorting syntax cannot be combined"),
        ({"visibility": "hidden"}, "Invalid visibility value: hidden"),
        ({"marker": "00000000-0000-0000-0000-000000000000"}, "No image found with ID"),
        ({"changes-since": "2020-01-01"}, "changes-since"),
    ],
)
def test_glance_bad_queries_are_400(api: Api, params: dict[str, str], message: str) -> None:
    api.make_image("one")
    response = api.call("GET", "/image/v2/images", params=params)
    assert response.status_code == 400 and message in response.text, response.text


def test_register_checks_the_files(api: Api) -> None:
    outside = api.files.parent / "outside.vmlinuz"
    outside.write_bytes(b"\0")
    for body, reason in (
        ({"kernel_path": str(outside)}, "[api] image_dirs"),
        # Outside first: the answer must not tell whether a file outside image_dirs exists.
        ({"kernel_path": "/nonexistent/k"}, "[api] image_dirs"),
        ({"kernel_path": str(api.files / "nonexistent")}, "No such file"),
        ({"kernel_path": str(api.files)}, "not a regular file"),
        ({"kernel_path": "relative"}, "absolute"),
        ({"kernel_path": str(outside), "kind": "kernel"}, "kind was unexpected"),
    ):
        response = api.call("POST", "/image/v2/images", json={"name": "bad", **body})
        assert response.status_code == 400 and reason in response.text, response.text
    disk = api.files / "d.raw"
    disk.write_bytes(b"\0" * 10)
    body = {"name": "disk", "disk_path": str(disk), "disk_format": "raw"}
    created = api.call("POST", "/image/v2/images", json=body)
    assert created.status_code == 201, created.text
    assert (created.json()["disk_format"], created.json()["size"]) == ("raw", 10)
    assert created.json()["disk_path"] == str(disk) and "cmdline" not in created.json()


def test_nova_proxy_shapes(api: Api) -> None:
    image_id = api.make_image("kern", size=64)
    (basic,) = api.compute("GET", "/images")["images"]
    assert set(basic) == {"id", "name", "links"} and basic["id"] == image_id
    assert [link["rel"] for link in basic["links"]] == ["self", "bookmark", "alternate"]
    assert basic["links"][2]["href"].endswith(f"/image/images/{image_id}")
    (detail,) = api.compute("GET", "/images/detail")["images"]
    shown = api.compute("GET", f"/images/{image_id}")["image"]
    assert shown == detail
    assert (detail["status"], detail["progress"], detail["minDisk"], detail["minRam"]) == (
        "ACTIVE",
        100,
        0,
        0,
    )
    assert detail["OS-EXT-IMG-SIZE:size"] == 64 and "server" not in detail
    assert detail["metadata"]["filemem_kind"] == "kernel"
    assert detail["metadata"]["cmdline"] == "console=ttyS0"
    assert detail["created"].endswith("Z") and detail["updated"] == detail["created"]
    missing = api.call("GET", "/v2.1/images/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404 and missing.json()["itemNotFound"]["message"] == (
        "Image not found."
    )


def test_nova_proxy_filters_and_pages(api: Api) -> None:
    ids = [api.make_image(name) for name in ("x", "y", "z")]
    names = [i["name"] for i in api.compute("GET", "/images")["images"]]
    assert names == ["z", "y", "x"]
    assert [i["id"] for i in api.compute("GET", "/images?name=y")["images"]] == [ids[1]]
    page = api.compute("GET", "/images/detail?limit=2")
    assert [i["name"] for i in page["images"]] == ["z", "y"]
    (link,) = page["images_links"]
    assert link["rel"] == "next" and link["href"].endswith(
        f"/v2.1/images/detail?limit=2&marker={ids[1]}"
    )
    rest = api.compute("GET", f"/images?limit=2&marker={ids[1]}")
    assert [i["name"] for i in rest["images"]] == ["x"] and "images_links" not in rest
    assert api.compute("GET", "/images?minRam=512")["images"] == []
    assert api.compute("GET", "/images?server=abc")["images"] == []
    bad = api.call("GET", "/v2.1/images?limit=nope")
    assert bad.status_code == 400 and "limit must be an integer" in bad.text


@pytest.mark.parametrize("path", ["/images", "/images/detail", "/images/{id}"])
def test_nova_proxy_is_gone_from_2_36(api: Api, path: str) -> None:
    image_id = api.make_image("kern")
    url = "/v2.1" + path.format(id=image_id)
    assert api.call("GET", url, "2.35").status_code == 200
    for version in ("2.36", "2.37", "latest"):
        response = api.call("GET", url, version)
        assert response.status_code == 404
        assert response.json() == {
            "itemNotFound": {"code": 404, "message": "The resource could not be found."}
        }


def test_register_refuses_unsafe_disks_and_stores_resolved_paths(api: Api, tmp_path: Path) -> None:
    """Issue 18 items 1 and 7: a disk naming a host file, a disguised format or another format
    answers 400 with the reason; a path through a symlink or /proc/self/root is stored
    resolved."""
    secret = tmp_path / "secret.raw"
    secret.write_bytes(b"secret" * 100)
    make = ["qemu-img", "create", "-q"]
    evil, data, disguised, vmdk = (api.files / n for n in ("e.qcow2", "d.qcow2", "x.raw", "v"))
    subprocess.run([*make, "-f", "qcow2", "-F", "raw", "-b", str(secret), str(evil)], check=True)
    subprocess.run([*make, "-f", "qcow2", "-o", f"data_file={secret}", str(data), "1M"], check=True)
    subprocess.run([*make, "-f", "qcow2", str(disguised), "1M"], check=True)
    subprocess.run([*make, "-f", "vmdk", str(vmdk), "1M"], check=True)
    for path, declared, reason in (
        (evil, "qcow2", "backing file"),
        (data, "qcow2", "data_file"),
        (disguised, "raw", "declared raw but its content is qcow2"),
        (vmdk, "qcow2", "its content is vmdk"),
    ):
        body = {"name": "bad", "disk_path": str(path), "disk_format": declared}
        response = api.call("POST", "/image/v2/images", json=body)
        assert response.status_code == 400, response.text
        assert f"disk_path {path}" in response.text and reason in response.text, response.text
    real = api.files / "real.raw"
    real.write_bytes(b"\0" * 512)
    (api.files / "link.raw").symlink_to(real)
    for given in (api.files / "link.raw", f"/proc/self/root{real}"):
        body = {"name": "ok", "disk_path": str(given), "disk_format": "raw"}
        created = api.call("POST", "/image/v2/images", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["disk_path"] == str(real)
    kernel = api.files / "k"
    kernel.write_bytes(b"\0")
    body = {"name": "k", "kernel_path": f"/proc/self/root{kernel}"}
    created = api.call("POST", "/image/v2/images", json=body)
    assert created.status_code == 201 and created.json()["kernel_path"] == str(kernel)
