"""Image upload and download over real HTTP to a filemem-api process, and the stock
`openstack image create --file / save / set / unset / delete` CLI against it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.functional.api_fixtures import TOKEN, ApiEnv, api_env
from tests.functional.placement_fixtures import REPO

OPENSTACK = REPO / ".venv" / "bin" / "openstack"
CAP = 4 * 1024 * 1024
OCTETS = {"Content-Type": "application/octet-stream"}


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    with api_env(
        tmp_path_factory.mktemp("image-upload"), api_options=f"image_size_cap = {CAP}\n"
    ) as running:
        yield running


def store(env: ApiEnv) -> Path:
    assert env.api is not None
    return env.api.state / "image-store"


def qcow2(path: Path, size: str = "16M") -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), size], check=True)
    return path


def cli(env: ApiEnv, tmp_path: Path, *args: str) -> Any:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  filemem:\n    auth_type: admin_token\n    auth:\n"
        f"      endpoint: {env.url}/v2.1\n      token: {TOKEN}\n"
        f"    identity_endpoint_override: {env.url}/identity/v3\n"
        f"    image_endpoint_override: {env.url}/image\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    environ.update(OS_CLIENT_CONFIG_FILE=str(clouds), OS_CLOUD="filemem")
    result = subprocess.run(
        [str(OPENSTACK), *args], env=environ, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout) if "-f" in args else result.stdout


def test_openstack_image_create_save_set_delete(env: ApiEnv, tmp_path: Path) -> None:
    disk = qcow2(tmp_path / "cli.qcow2", "8M")
    data = disk.read_bytes()
    created = cli(
        env, tmp_path, "image", "create", "--file", str(disk), "--disk-format", "qcow2",
        "--container-format", "bare", "cli-image", "-f", "json",
    )  # fmt: skip
    image_id = created["id"]
    shown = cli(env, tmp_path, "image", "show", image_id, "-f", "json")
    assert (shown["status"], shown["size"]) == ("active", len(data))
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    props = shown["properties"]
    assert props["os_hash_algo"] == "sha512"
    assert props["os_hash_value"] == hashlib.sha512(data).hexdigest()
    # openstacksdk's own properties, which glance keeps as strings (filemem once refused them).
    assert props["owner_specified.openstack.object"] == "images/cli-image"
    saved = tmp_path / "saved.qcow2"
    cli(env, tmp_path, "image", "save", "--file", str(saved), image_id)
    assert saved.read_bytes() == data

    cli(env, tmp_path, "image", "set", "--property", "color=blue", "--name", "renamed", image_id)
    cli(env, tmp_path, "image", "set", "--private", image_id)
    shown = cli(env, tmp_path, "image", "show", image_id, "-f", "json")
    assert (shown["name"], shown["visibility"]) == ("renamed", "private")
    assert shown["properties"]["color"] == "blue"
    cli(env, tmp_path, "image", "unset", "--property", "color", image_id)
    assert "color" not in cli(env, tmp_path, "image", "show", image_id, "-f", "json")["properties"]
    listed = cli(env, tmp_path, "image", "list", "-f", "json")
    assert "renamed" in [image["Name"] for image in listed]

    cli(env, tmp_path, "image", "delete", image_id)
    assert env.http.get(f"/image/v2/images/{image_id}").status_code == 404
    assert list(store(env).iterdir()) == []


def test_upload_limits_and_refusals_over_http(env: ApiEnv, tmp_path: Path) -> None:
    def queued(disk_format: str) -> str:
        body = {"name": "h", "disk_format": disk_format, "container_format": "bare"}
        response = env.http.post("/image/v2/images", json=body)
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    big = qcow2(tmp_path / "big.qcow2")
    (tmp_path / "big.raw").write_bytes(b"\0" * (CAP + 1))
    image = queued("raw")
    path = f"/image/v2/images/{image}/file"
    with open(tmp_path / "big.raw", "rb") as body:
        response = env.http.put(path, content=body, headers=OCTETS)
    assert response.status_code == 413, response.text

    def streamed() -> Iterator[bytes]:  # chunked: no Content-Length to refuse up front
        for _ in range(CAP // 65536 + 2):
            yield b"\0" * 65536

    response = env.http.put(path, content=streamed(), headers=OCTETS)
    assert response.status_code == 413, response.text
    response = env.http.put(path, content=big.read_bytes(), headers=OCTETS)
    assert response.status_code == 400 and "declared raw" in response.text, response.text
    assert env.http.get(f"/image/v2/images/{image}").json()["status"] == "queued"
    assert list(store(env).iterdir()) == []
    # The same data declared as what it is, streamed in chunks: accepted and read back whole.
    good = queued("qcow2")
    data = big.read_bytes()
    response = env.http.put(
        f"/image/v2/images/{good}/file",
        content=(data[i : i + 100_000] for i in range(0, len(data), 100_000)),
        headers=OCTETS,
    )
    assert response.status_code == 204, response.text
    with env.http.stream("GET", f"/image/v2/images/{good}/file") as download:
        got = b"".join(download.iter_bytes())
        assert download.headers["Content-MD5"] == hashlib.md5(data).hexdigest()
    assert got == data
    assert env.http.delete(f"/image/v2/images/{good}").status_code == 204
