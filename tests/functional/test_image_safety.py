"""Disk images tampered with after registration, booted through the real cloud (issue 18)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.functional.cloud import SCRATCH, Cloud, domain_exists

HOST = "img-host"
# Cloud's [api] image_dirs.
IMAGE_DIR = Path("/var/lib/filemem/images")


@pytest.fixture(scope="module")
def cloud(libvirtd: None) -> Iterator[Cloud]:
    cloud = Cloud()
    try:
        cloud.start_agent(HOST, 0)
        yield cloud
    finally:
        cloud.close()


@pytest.fixture
def images(cloud: Cloud) -> Iterator[Path]:
    path = IMAGE_DIR / f"safety-{uuidlib.uuid4().hex[:8]}"
    path.mkdir(mode=0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def secret() -> Iterator[Path]:
    """A host file outside image_dirs that no guest may reach: root's, 0600."""
    SCRATCH.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = SCRATCH / f"secret-{uuidlib.uuid4().hex[:8]}.raw"
    path.write_bytes(b"secret" * 1024 * 1024)
    path.chmod(0o600)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", "create", "-q", *args], check=True, capture_output=True)


def register(cloud: Cloud, disk: Path, disk_format: str) -> str:
    body = {"name": disk.name, "disk_path": str(disk), "disk_format": disk_format}
    response = cloud.http.post(f"{cloud.api_url}/image/v2/images", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def settled(cloud: Cloud, uuid: str) -> dict[str, Any]:
    """The server once its build is over, ACTIVE or ERROR."""
    done = ("ACTIVE", "ERROR")
    cloud.wait_for(lambda: (cloud.server(uuid) or {}).get("status") in done, f"{uuid} built")
    server = cloud.server(uuid)
    assert server is not None
    return server


def boot_fails(cloud: Cloud, image: str, flavor: str, reason: str) -> None:
    server = settled(cloud, cloud.create(f"t-{uuidlib.uuid4().hex[:6]}", flavor, image))
    assert server["status"] == "ERROR", f"booted from a tampered image: {server}"
    assert reason in server["fault"]["message"], server["fault"]
    assert not domain_exists(server["id"])
    cloud.http.delete(f"/servers/{server['id']}").raise_for_status()


def untouched(secret: Path) -> None:
    """libvirt's DAC chowns every file of a guest's disk chain to QEMU's user and leaves a
    read-only backing file so: still root's and 0600 means no guest was given it."""
    info = secret.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 0, 0o600)


def test_a_disk_tampered_after_registration_is_refused_at_spawn(
    cloud: Cloud, images: Path, secret: Path
) -> None:
    """Item 7: the disk file (and then its directory) re-pointed at an outside file by a
    symlink; item 1: the file replaced by a qcow2 whose backing file is outside. Each server
    goes to ERROR with a fault naming the image and the reason; the outside file is not chowned."""
    flavor = cloud.flavor("img.tiny", 128)
    sub = images / "sub"
    sub.mkdir()
    disk = sub / "disk.raw"
    qemu_img("-f", "raw", str(disk), "16M")
    image = register(cloud, disk, "raw")
    disk.unlink()
    disk.symlink_to(secret)
    boot_fails(cloud, image, flavor, f"image disk.raw is refused: {disk} has moved")
    untouched(secret)

    disk.unlink()
    sub.rename(images / "old")
    sub.symlink_to(secret.parent)
    os.link(secret, secret.parent / "disk.raw")
    try:
        boot_fails(cloud, image, flavor, f"now resolves to {secret.parent / 'disk.raw'}")
    finally:
        (secret.parent / "disk.raw").unlink()
    untouched(secret)

    evil = images / "evil.qcow2"
    qemu_img("-f", "qcow2", str(evil), "16M")
    image = register(cloud, evil, "qcow2")
    qemu_img("-f", "qcow2", "-F", "raw", "-b", str(secret), str(evil))
    boot_fails(cloud, image, flavor, "Image has a backing file")
    untouched(secret)


def test_a_guest_files_are_readable_by_qemu_only(cloud: Cloud, images: Path) -> None:
    """Item 9 (guest disks): a running guest's overlay and console log are readable by no other
    local user (libvirt chowns the 0600 overlay to QEMU's user), its directory is searchable
    but not listable, and the guest runs (QEMU reads its disk)."""
    disk = images / "good.raw"
    qemu_img("-f", "raw", str(disk), "16M")
    disk.chmod(0o644)
    uuid = cloud.create("good", cloud.flavor("img.ok", 128), register(cloud, disk, "raw"))
    server = settled(cloud, uuid)
    assert server["status"] == "ACTIVE", server
    workdir = cloud.base / HOST / "instances" / uuid
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o711
    files = {path.name: path.stat() for path in workdir.iterdir()}
    assert {"disk.qcow2", "console.log"} <= set(files), files
    readable = {name: oct(info.st_mode) for name, info in files.items() if info.st_mode & 0o004}
    assert readable == {}, f"world-readable guest files: {readable}"
    overlay = files["disk.qcow2"]
    assert stat.S_IMODE(overlay.st_mode) == 0o600 and overlay.st_uid != 0, "QEMU's while running"
    cloud.http.delete(f"/servers/{uuid}").raise_for_status()
    cloud.wait_for(lambda: cloud.server(uuid) is None, f"{uuid} deleted")
    assert not workdir.exists()
