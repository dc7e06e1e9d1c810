"""Guests booted from images uploaded to the API: the agent, holding only its host's
credential, downloads each into its cache (_base) once and backs every overlay with it; a
corrupt download puts the server in ERROR and leaves nothing in the cache."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.cloud import Cloud, domain_exists

HOST = "upload-host"
F = "/filemem/v1"


@pytest.fixture(scope="module")
def cloud(libvirtd: None) -> Iterator[Cloud]:
    cloud = Cloud()
    try:
        response = cloud.http.post(f"{cloud.api_url}{F}/hosts/{HOST}/credentials")
        assert response.status_code == 201, response.text
        secret_file = cloud.base / f"{HOST}.credential"
        secret_file.write_text(response.json()["credential"]["secret"])
        secret_file.chmod(0o600)
        cloud.start_agent(HOST, 1024, credential_file=secret_file)
        yield cloud
    finally:
        cloud.close()


def upload(cloud: Cloud, data: bytes) -> str:
    body = {"name": "up", "disk_format": "qcow2", "container_format": "bare"}
    created = cloud.http.post(f"{cloud.api_url}/image/v2/images", json=body)
    assert created.status_code == 201, created.text
    image_id = str(created.json()["id"])
    put = cloud.http.put(
        f"{cloud.api_url}/image/v2/images/{image_id}/file",
        content=data,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert put.status_code == 204, put.text
    return image_id


def disk_bytes(tmp_path: Path, name: str, size: str) -> bytes:
    """An empty qcow2: the same size makes the same bytes, which the cache shares by hash."""
    disk = tmp_path / name
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), size], check=True)
    return disk.read_bytes()


def backing_file(cloud: Cloud, uuid: str) -> str:
    overlay = cloud.base / HOST / "instances" / uuid / "disk.qcow2"
    info = subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", str(overlay)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return str(json.loads(info)["backing-filename"])


def delete(cloud: Cloud, uuid: str) -> None:
    assert cloud.http.delete(f"/servers/{uuid}").status_code == 204
    cloud.wait_for(lambda: cloud.server(uuid) is None, f"{uuid} deleted")


def test_guests_boot_from_one_download_of_an_uploaded_image(cloud: Cloud, tmp_path: Path) -> None:
    data = disk_bytes(tmp_path, "a.qcow2", "16M")
    image = upload(cloud, data)
    flavor = cloud.flavor("up.tiny", 128)
    base = cloud.base / HOST / "_base" / hashlib.sha512(data).hexdigest()
    first = cloud.create("up-1", flavor, image)
    cloud.wait_status(first, "ACTIVE", timeout=180)
    assert base.read_bytes() == data and backing_file(cloud, first) == str(base)
    downloaded = base.stat().st_ino
    second = cloud.create("up-2", flavor, image)
    cloud.wait_status(second, "ACTIVE", timeout=180)
    # The same file, not a second download renamed over it.
    assert backing_file(cloud, second) == str(base) and base.stat().st_ino == downloaded
    assert [p.name for p in base.parent.iterdir()] == [base.name]
    for uuid in (first, second):
        delete(cloud, uuid)


def test_a_corrupt_download_is_refused(cloud: Cloud, tmp_path: Path) -> None:
    data = disk_bytes(tmp_path, "b.qcow2", "17M")
    image = upload(cloud, data)
    stored = cloud.base / "api" / "image-store" / image
    # The API's copy changes behind its back: same size, other bytes.
    with open(stored, "r+b") as handle:
        handle.seek(len(data) - 1)
        handle.write(b"\x01")
    uuid = cloud.create("up-bad", cloud.flavor("up.bad", 128), image)
    server = cloud.wait_status(uuid, "ERROR")
    assert server is not None and "the download is corrupt" in server["fault"]["message"]
    assert not domain_exists(uuid)
    cache = cloud.base / HOST / "_base"
    assert hashlib.sha512(data).hexdigest() not in [p.name for p in cache.iterdir()]
    assert [p.name for p in cache.iterdir() if p.name.endswith(".part")] == []
    delete(cloud, uuid)
