"""Uploaded images per project, as glance's default policy has them: a member uploads into
their own project, private images are seen by it only, only the admin makes one public; and a
host credential downloads an image only while an instance of its host boots from it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from tests.unit import tenants_app
from tests.unit.tenants_app import Tenants

tenants = tenants_app.tenants

PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
OCTETS = {"Content-Type": "application/octet-stream"}


def upload(tenants: Tenants, who: str, tmp_path: Path, **body: Any) -> str:
    created = tenants.call(
        who,
        "POST",
        "/image/v2/images",
        json={"name": f"{who}-img", "disk_format": "qcow2", "container_format": "bare", **body},
    )
    assert created.status_code == 201, created.text
    image_id: str = created.json()["id"]
    disk = tmp_path / f"{image_id}.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "1M"], check=True)
    path = f"/image/v2/images/{image_id}/file"
    put = tenants.call(who, "PUT", path, content=disk.read_bytes(), headers=OCTETS)
    assert put.status_code == 204, put.text
    return image_id


def names(tenants: Tenants, who: str) -> set[str]:
    listed = tenants.call(who, "GET", "/image/v2/images")
    assert listed.status_code == 200, listed.text
    return {image["name"] for image in listed.json()["images"]}


def test_private_images_are_their_projects(tenants: Tenants, tmp_path: Path) -> None:
    mine = upload(tenants, "member_a", tmp_path, visibility="private")
    shown = tenants.call("member_a", "GET", f"/image/v2/images/{mine}").json()
    assert (shown["owner"], shown["visibility"], shown["status"]) == (
        "project-a",
        "private",
        "active",
    )
    assert "member_a-img" in names(tenants, "member_a") and "member_a-img" in names(
        tenants, "admin"
    )
    assert "member_a-img" not in names(tenants, "member_b")
    for method, path in (
        ("GET", f"/image/v2/images/{mine}"),
        ("GET", f"/image/v2/images/{mine}/file"),
        ("DELETE", f"/image/v2/images/{mine}"),
    ):
        assert tenants.call("member_b", method, path).status_code == 404
    # A reader may look but not create; nobody but the admin publishes.
    refused = tenants.call("reader_a", "POST", "/image/v2/images", json={"name": "r"})
    assert refused.status_code == 403, refused.text
    public = [{"op": "replace", "path": "/visibility", "value": "public"}]
    path = f"/image/v2/images/{mine}"
    assert tenants.call("member_a", "PATCH", path, json=public, headers=PATCH).status_code == 403
    body = {"name": "p", "visibility": "public"}
    assert tenants.call("member_a", "POST", "/image/v2/images", json=body).status_code == 403
    assert tenants.call("admin", "PATCH", path, json=public, headers=PATCH).status_code == 200
    assert "member_a-img" in names(tenants, "member_b")
    rename = [{"op": "replace", "path": "/name", "value": "x"}]
    assert tenants.call("member_b", "PATCH", path, json=rename, headers=PATCH).status_code == 403
    # Registering by path stays the admin's.
    by_path = {"name": "k", "kernel_path": str(tmp_path / "vmlinuz")}
    assert tenants.call("member_a", "POST", "/image/v2/images", json=by_path).status_code == 403


def test_boot_of_another_projects_private_image_is_400(tenants: Tenants, tmp_path: Path) -> None:
    theirs = upload(tenants, "member_b", tmp_path, visibility="private")
    body = {"server": {"name": "vm", "flavorRef": tenants.flavor, "imageRef": theirs}}
    response = tenants.call(
        "member_a",
        "POST",
        "/servers",
        "2.37",
        json={"server": {**body["server"], "networks": "none"}},
    )
    assert response.status_code == 400 and "could not be found" in response.text, response.text


def test_host_downloads_only_images_its_instances_use(tenants: Tenants, tmp_path: Path) -> None:
    image = upload(tenants, "member_a", tmp_path, visibility="private")
    made = tenants.call("admin", "POST", f"/filemem/v1/hosts/{tenants.host}/credentials")
    assert made.status_code == 201, made.text
    host = {"X-Auth-Token": made.json()["credential"]["secret"]}
    path = f"/image/v2/images/{image}/file"
    before = tenants.client.get(path, headers=host)
    assert before.status_code == 403 and "download of image" in before.text, before.text
    listing = tenants.client.get("/image/v2/images", headers=host)
    assert listing.status_code == 403
    tenants.image = image
    tenants.boot("member_a", networks="none")
    after = tenants.client.get(path, headers=host)
    assert after.status_code == 200, after.text
    assert after.content.startswith(b"QFI\xfb")
