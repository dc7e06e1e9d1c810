"""Images uploaded as glance takes them: create queued, PUT the data (hashed, inspected,
bounded), GET it back, PATCH, DELETE, visibility per project, and boots of images not active."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

from tests.unit.api_app import Api

PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
OCTETS = {"Content-Type": "application/octet-stream"}


def qcow2(path: Path, size: str = "1M") -> bytes:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return path.read_bytes()


def create(api: Api, **body: Any) -> dict[str, Any]:
    base = {"name": "up", "disk_format": "qcow2", "container_format": "bare"}
    response = api.call("POST", "/image/v2/images", json={**base, **body})
    assert response.status_code == 201, response.text
    image: dict[str, Any] = response.json()
    return image


def show(api: Api, image_id: str) -> dict[str, Any]:
    response = api.call("GET", f"/image/v2/images/{image_id}")
    assert response.status_code == 200, response.text
    image: dict[str, Any] = response.json()
    return image


def store(api: Api) -> Path:
    assert api.ctx.image_store_dir is not None
    return Path(api.ctx.image_store_dir)


def test_upload_download_round_trip(api: Api, tmp_path: Path) -> None:
    data = qcow2(tmp_path / "a.qcow2")
    extra = {"owner_specified.openstack.md5": hashlib.md5(data).hexdigest()}
    image = create(api, **extra)
    assert (image["status"], image["visibility"], image["size"]) == ("queued", "shared", None)
    assert image["owner_specified.openstack.md5"] == extra["owner_specified.openstack.md5"]
    assert api.call("GET", f"/image/v2/images/{image['id']}/file").status_code == 204
    put = api.call("PUT", f"/image/v2/images/{image['id']}/file", content=data, headers=OCTETS)
    assert put.status_code == 204, put.text
    shown = show(api, image["id"])
    assert shown["status"] == "active" and shown["size"] == len(data)
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["os_hash_algo"] == "sha512"
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert shown["virtual_size"] == 1024 * 1024
    stored = store(api) / image["id"]
    assert stored.read_bytes() == data and stored.stat().st_mode & 0o777 == 0o600
    got = api.call("GET", f"/image/v2/images/{image['id']}/file")
    assert got.status_code == 200 and got.content == data
    assert got.headers["Content-MD5"] == shown["checksum"]
    again = api.call("PUT", f"/image/v2/images/{image['id']}/file", content=data, headers=OCTETS)
    assert again.status_code == 409, again.text


def test_bad_data_is_refused_and_nothing_kept(api: Api, tmp_path: Path) -> None:
    backed = tmp_path / "b.qcow2"
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            "raw",
            "-b",
            "/etc/hostname",
            str(backed),
        ],
        check=True,
    )
    for body, data, reason in (
        ({"disk_format": "qcow2"}, b"not an image at all" * 100, "declared qcow2"),
        ({"disk_format": "raw"}, qcow2(tmp_path / "q.qcow2"), "declared raw"),
        ({"disk_format": "qcow2"}, backed.read_bytes(), "backing file"),
    ):
        image = create(api, **body)
        path = f"/image/v2/images/{image['id']}/file"
        response = api.call("PUT", path, content=data, headers=OCTETS)
        assert response.status_code == 400 and reason in response.text, response.text
        assert str(store(api)) not in response.text
        assert show(api, image["id"])["status"] == "queued"
        assert list(store(api).iterdir()) == []


def test_size_cap_is_413(api: Api, tmp_path: Path) -> None:
    data = qcow2(tmp_path / "c.qcow2")
    api.ctx.image_size_cap = len(data) - 1
    image = create(api)
    path = f"/image/v2/images/{image['id']}/file"
    declared = api.call("PUT", path, content=data, headers=OCTETS)
    assert declared.status_code == 413, declared.text

    def chunks() -> Any:
        yield data[:1000]
        yield data[1000:]

    streamed = api.call("PUT", path, content=chunks(), headers=OCTETS)
    assert streamed.status_code == 413, streamed.text
    assert show(api, image["id"])["status"] == "queued"
    assert list(store(api).iterdir()) == []


def test_create_refuses_what_glance_refuses(api: Api) -> None:
    for body, status, reason in (
        ({"name": "x", "status": "active"}, 403, "Attribute 'status' is read-only"),
        ({"name": "x", "prop": 1}, 400, "is not of type 'string'"),
        ({"name": "x", "tags": ["t"]}, 400, "tags"),
        ({"name": "x", "disk_format": "aki"}, 400, "qcow2 or raw"),
    ):
        response = api.call("POST", "/image/v2/images", json=body)
        assert response.status_code == status and reason in response.text, response.text
    queued = create(api, disk_format=None)
    put = api.call("PUT", f"/image/v2/images/{queued['id']}/file", content=b"x", headers=OCTETS)
    assert put.status_code == 400 and "disk_format" in put.text, put.text


def test_patch_and_delete(api: Api, tmp_path: Path) -> None:
    image = create(api, protected=True)
    path = f"/image/v2/images/{image['id']}"
    ops = [
        {"op": "replace", "path": "/name", "value": "renamed"},
        {"op": "add", "path": "/color", "value": "blue"},
        {"op": "replace", "path": "/visibility", "value": "private"},
        {"op": "replace", "path": "/min_ram", "value": 128},
    ]
    patched = api.call("PATCH", path, json=ops, headers=PATCH)
    assert patched.status_code == 200, patched.text
    got = patched.json()
    assert (got["name"], got["color"], got["visibility"], got["min_ram"]) == (
        "renamed",
        "blue",
        "private",
        128,
    )
    for bad, status in (
        ([{"op": "remove", "path": "/color"}], 200),
        ([{"op": "remove", "path": "/color"}], 409),
        ([{"op": "replace", "path": "/status", "value": "active"}], 403),
        ([{"op": "replace", "path": "/min_ram", "value": -1}], 400),
        ([{"op": "move", "path": "/name"}], 400),
    ):
        response = api.call("PATCH", path, json=bad, headers=PATCH)
        assert response.status_code == status, response.text
    assert "color" not in show(api, image["id"])
    assert api.call("PATCH", path, json=ops, headers=OCTETS).status_code == 415
    data = qcow2(tmp_path / "d.qcow2")
    api.call("PUT", f"{path}/file", content=data, headers=OCTETS)
    assert api.call("DELETE", path).status_code == 403  # protected, as glance
    unprotect = [{"op": "replace", "path": "/protected", "value": False}]
    assert api.call("PATCH", path, json=unprotect, headers=PATCH).status_code == 200
    assert api.call("DELETE", path).status_code == 204
    assert api.call("GET", path).status_code == 404
    assert list(store(api).iterdir()) == []


def test_boot_of_an_image_not_active_is_400(api: Api) -> None:
    image = create(api)
    api.compute(
        "POST", "/flavors", json={"flavor": {"name": "f", "ram": 64, "vcpus": 1, "disk": 0}}
    )
    flavor = api.compute("GET", "/flavors/detail")["flavors"][0]["id"]
    server = {"name": "s", "imageRef": image["id"], "flavorRef": flavor, "networks": "none"}
    response = api.call("POST", "/v2.1/servers", "2.37", json={"server": server})
    assert response.status_code == 400, response.text
    assert f"Image {image['id']} is not active." in response.text
