"""`openstack server image create` and `server backup create` against `filemem up`: a real
guest's disk written to a new image by its host, downloaded and compared byte for byte."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from tests.functional.test_openstack_day import Cloud, cloud

PATTERN = b"filemem snapshot pattern\n" * 40
DISK_MB = 16


__all__ = ["cloud"]  # `filemem up` and the CLI, one per module


def base_disk(directory: Path) -> tuple[Path, Path]:
    """A raw disk with a pattern 4 MiB in, and the same as qcow2 (what is uploaded)."""
    raw = directory / "base.raw"
    with raw.open("wb") as handle:
        handle.truncate(DISK_MB * 1024 * 1024)
        handle.seek(4 * 1024 * 1024)
        handle.write(PATTERN)
    qcow2 = directory / "base.qcow2"
    subprocess.run(
        ["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)], check=True
    )
    return raw, qcow2


def wait_image(cloud: Cloud, name: str, timeout: float = 180) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    shown: dict[str, object] = {}
    while time.monotonic() < deadline:
        found = cloud.run("image", "show", name, "-f", "json")
        if found.returncode == 0:
            shown = cloud.json("image", "show", name)
            if shown["status"] == "active":
                return shown
        time.sleep(1)
    raise AssertionError(f"image {name} is not active: {shown}")


def test_a_server_snapshot_is_its_disk_and_backups_rotate(cloud: Cloud, tmp_path: Path) -> None:
    raw, qcow2 = base_disk(tmp_path)
    cloud(
        "image", "create", "--file", str(qcow2), "--disk-format", "qcow2",
        "--container-format", "bare", "snapbase",
    )  # fmt: skip
    # The disk boots nothing (SeaBIOS finds no boot sector): the guest runs all the same.
    cloud(
        "server", "create", "--flavor", "m1.tiny", "--image", "snapbase", "--nic", "none",
        "--wait", "snapvm",
    )  # fmt: skip
    cloud("server", "image", "create", "--name", "snap1", "--wait", "snapvm")
    snap = wait_image(cloud, "snap1")
    props = snap["properties"]
    assert isinstance(props, dict) and props["image_type"] == "snapshot"
    server = cloud.json("server", "show", "snapvm")
    assert props["instance_uuid"] == server["id"]
    assert server["status"] == "ACTIVE" and server["OS-EXT-STS:task_state"] is None
    saved = tmp_path / "snap1.qcow2"
    cloud("image", "save", "--file", str(saved), "snap1")
    same = subprocess.run(
        ["qemu-img", "compare", "-f", "raw", "-F", "qcow2", str(raw), str(saved)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert same.returncode == 0, same.stdout + same.stderr

    for name in ("daily1", "daily2"):
        cloud("server", "backup", "create", "--name", name, "--type", "daily", "--rotate", "1",
              "snapvm")  # fmt: skip
        wait_image(cloud, name)
        cloud.wait_status("snapvm", "ACTIVE")
        deadline = time.monotonic() + 60
        while cloud.json("server", "show", "snapvm")["OS-EXT-STS:task_state"] is not None:
            assert time.monotonic() < deadline
            time.sleep(1)
    names = {image["Name"] for image in cloud.json("image", "list")}
    assert "daily2" in names and "daily1" not in names, names  # rotation 1 kept the newest
    cloud("server", "delete", "--wait", "snapvm")
    for name in ("snap1", "daily2", "snapbase"):
        cloud("image", "delete", name)
