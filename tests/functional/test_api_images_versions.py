"""The openstack CLI and openstacksdk against glance at /image and the version-gated resources."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.functional.api_fixtures import (
    TOKEN,
    ApiEnv,
    agent_spawned,
    api_env,
    create_server,
    make_flavor,
    make_image,
    register_host,
)
from tests.functional.placement_fixtures import REPO
from tests.functional.test_api_openstack import cli, connect

HOST = "iv-host"
IMAGE = "iv-image"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("api-images-versions")) as running:
        register_host(running, HOST, memory_mb=4096, vcpus=8)
        yield running


@pytest.fixture(scope="module")
def server(env: ApiEnv) -> dict[str, str]:
    image = make_image(env, IMAGE)
    flavor = make_flavor(env, "iv.small", ram=256, vcpus=1)
    server_id = create_server(env, "iv-vm", flavor, image)
    agent_spawned(env, server_id)
    return {"image": image, "server": server_id}


def cli_json(env: ApiEnv, tmp_path: Path, *args: str) -> Any:
    return json.loads(cli(env, tmp_path, *args, "-f", "json"))


def test_cli_images_and_server_image_names(
    env: ApiEnv, server: dict[str, str], tmp_path: Path
) -> None:
    listed = cli_json(env, tmp_path, "image", "list")
    assert {"ID": server["image"], "Name": IMAGE, "Status": "active"} in listed
    shown = cli_json(env, tmp_path, "image", "show", IMAGE)
    assert (shown["id"], shown["disk_format"], shown["visibility"]) == (
        server["image"],
        "aki",
        "public",
    )
    assert shown["properties"]["filemem_kind"] == "kernel"
    servers = cli_json(env, tmp_path, "server", "list", "--long")
    (row,) = [s for s in servers if s["ID"] == server["server"]]
    assert row["Image Name"] == IMAGE and row["Image ID"] == server["image"]


def test_sdk_images_through_glance_and_the_nova_proxy(env: ApiEnv, server: dict[str, str]) -> None:
    conn = connect(env)
    assert server["image"] in [i.id for i in conn.image.images()]
    assert conn.image.get_image(server["image"]).name == IMAGE
    nova_images = list(conn.compute.images())
    assert server["image"] in [i.id for i in nova_images]
    assert conn.compute.get_image(server["image"]).min_ram == 0


def test_cli_hypervisors(env: ApiEnv, server: dict[str, str], tmp_path: Path) -> None:
    (listed,) = cli_json(env, tmp_path, "hypervisor", "list")
    assert listed["Hypervisor Hostname"] == HOST and listed["State"] == "up"
    shown = cli_json(env, tmp_path, "hypervisor", "show", HOST)
    assert shown["hypervisor_hostname"] == HOST
    stats = cli_json(env, tmp_path, "hypervisor", "stats", "show")
    assert stats["count"] == 1 and stats["memory_mb"] == 4096


def test_cli_compute_services_set_and_force_down(env: ApiEnv, tmp_path: Path) -> None:
    (service,) = cli_json(env, tmp_path, "compute", "service", "list")
    assert (service["Host"], service["Status"], service["State"]) == (HOST, "enabled", "up")
    cli(env, tmp_path, "compute", "service", "set", "--disable", "--disable-reason", "fix",
        HOST, "nova-compute")  # fmt: skip
    (service,) = cli_json(env, tmp_path, "compute", "service", "list", "--long")
    assert (service["Status"], service["Disabled Reason"]) == ("disabled", "fix")
    cli(env, tmp_path, "compute", "service", "set", "--down", HOST, "nova-compute")
    (service,) = cli_json(env, tmp_path, "compute", "service", "list", "--long")
    assert (service["State"], service["Forced Down"]) == ("down", True)
    cli(env, tmp_path, "compute", "service", "set", "--enable", "--up", HOST, "nova-compute")
    (service,) = cli_json(env, tmp_path, "compute", "service", "list", "--long")
    assert (service["Status"], service["State"], service["Forced Down"]) == (
        "enabled",
        "up",
        False,
    )


def test_cli_zones_limits_and_quotas(env: ApiEnv, server: dict[str, str], tmp_path: Path) -> None:
    (zone,) = cli_json(env, tmp_path, "availability", "zone", "list", "--long", "--compute")
    assert (zone["Zone Name"], zone["Zone Status"], zone["Host Name"]) == (
        "nova",
        "available",
        HOST,
    )
    assert zone["Service Name"] == "nova-compute"
    assert zone["Service Status"].startswith("enabled :-) ")
    rows = cli_json(env, tmp_path, "limits", "show", "--absolute")
    limits = {row["Name"]: row["Value"] for row in rows}
    assert (limits["max_total_ram_size"], limits["max_total_instances"]) == (51200, 10)
    assert (limits["total_ram_used"], limits["total_instances_used"]) == (256, 1)
    quota = cli_json(env, tmp_path, "quota", "show", "--compute", "filemem")
    limit = {row["Resource"]: row["Limit"] for row in quota}
    assert (limit["cores"], limit["ram"], limit["instances"]) == (20, 51200, 10)
    assert limit["key-pairs"] == -1
    # The CLI negotiates 2.36 or later: the network quotas are gone from the answer.
    assert limit["floating_ips"] is None and limit["security_groups"] is None


def filemem_cli(env: ApiEnv, *args: str) -> Any:
    environ = {**os.environ, "FILEMEM_ENDPOINT": env.url, "FILEMEM_TOKEN": TOKEN}
    result = subprocess.run(
        [sys.executable, "-m", "filemem.cmd.cli", *args, "--json"],
        cwd=REPO,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_filemem_image_commands_use_glance(env: ApiEnv) -> None:
    kernel = env.files / "cli.vmlinuz"
    kernel.write_bytes(b"\0" * 32)
    created = filemem_cli(
        env, "image", "create", "cli-image", "--kernel", str(kernel), "--cmdline", "quiet"
    )
    assert (created["name"], created["disk_format"], created["cmdline"]) == (
        "cli-image",
        "aki",
        "quiet",
    )
    assert created["id"] in [i["id"] for i in filemem_cli(env, "image", "list")]
    assert filemem_cli(env, "image", "show", "cli-image")["id"] == created["id"]
    assert filemem_cli(env, "image", "show", created["id"])["kernel_path"] == str(kernel)
