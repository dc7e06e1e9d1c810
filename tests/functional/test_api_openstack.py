"""Stock OpenStack clients against filemem-api: openstacksdk and the `openstack` CLI."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import openstack
import pytest

from tests.functional.api_fixtures import (
    TOKEN,
    ApiEnv,
    agent_converge_deletes,
    agent_spawned,
    api_env,
    create_server,
    make_flavor,
    make_image,
    register_host,
)
from tests.functional.placement_fixtures import REPO

HOST = "os-host"
OPENSTACK = REPO / ".venv" / "bin" / "openstack"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("api-openstack")) as running:
        register_host(running, HOST, memory_mb=4096, vcpus=8)
        yield running


@pytest.fixture(scope="module")
def image(env: ApiEnv) -> str:
    return make_image(env, "os-image")


def connect(env: ApiEnv) -> openstack.connection.Connection:
    return openstack.connection.Connection(
        auth_type="admin_token",
        auth={"endpoint": f"{env.url}/v2.1", "token": TOKEN},
        image_endpoint_override=f"{env.url}/image",
    )


def test_openstacksdk_flavors_and_server_lifecycle(env: ApiEnv, image: str) -> None:
    conn = connect(env)
    flavor = conn.compute.create_flavor(name="sdk.small", ram=256, vcpus=1, disk=0)
    assert flavor.id and flavor.ram == 256
    assert "sdk.small" in [f.name for f in conn.compute.flavors()]
    assert conn.compute.get_flavor(flavor.id).vcpus == 1

    # openstacksdk negotiates 2.37, where networks is required and filemem serves "none".
    server = conn.compute.create_server(
        name="sdk-vm", flavor_id=flavor.id, image_id=image, networks="none"
    )
    fetched = conn.compute.get_server(server.id)
    assert (fetched.status, fetched.compute_host) == ("BUILD", HOST)
    agent_spawned(env, server.id)
    fetched = conn.compute.get_server(server.id)
    assert fetched.status == "ACTIVE" and fetched.vm_state == "active"
    assert fetched.flavor.id == flavor.id and fetched.image.id == image
    assert server.id in [s.id for s in conn.compute.servers()]
    assert server.id in [s.id for s in conn.compute.servers(details=True, name="^sdk-")]

    conn.compute.stop_server(server.id)
    assert conn.compute.get_server(server.id).task_state == "powering-off"

    conn.compute.delete_server(server.id)
    assert conn.compute.get_server(server.id).task_state == "deleting"
    assert server.id in agent_converge_deletes(env, HOST)
    assert conn.compute.find_server(server.id) is None
    conn.compute.delete_flavor(flavor.id)
    assert conn.compute.find_flavor(flavor.id) is None


def cli(env: ApiEnv, tmp_path: Path, *args: str) -> str:
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
        [str(OPENSTACK), *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def test_openstack_cli_with_identity_endpoint_override(
    env: ApiEnv, image: str, tmp_path: Path
) -> None:
    flavor = make_flavor(env, "cli.small", ram=512, vcpus=2)
    server_id = create_server(env, "cli-vm", flavor, image)
    agent_spawned(env, server_id)

    listing = cli(
        env,
        tmp_path,
        "server",
        "list",
        "-f",
        "value",
        "-c",
        "ID",
        "-c",
        "Name",
        "-c",
        "Status",
        "-c",
        "Image",
        "-c",
        "Flavor",
    )
    assert f"{server_id} cli-vm ACTIVE os-image cli.small" in listing

    shown = cli(
        env,
        tmp_path,
        "server",
        "show",
        "cli-vm",
        "-f",
        "value",
        "-c",
        "status",
        "-c",
        "OS-EXT-SRV-ATTR:host",
        "-c",
        "flavor",
    )
    assert "ACTIVE" in shown and HOST in shown and "cli.small" in shown

    flavors = cli(env, tmp_path, "flavor", "list", "-f", "value", "-c", "Name", "-c", "RAM")
    assert "cli.small 512" in flavors

    hypervisor = cli(
        env,
        tmp_path,
        "hypervisor",
        "show",
        HOST,
        "-f",
        "value",
        "-c",
        "hypervisor_hostname",
        "-c",
        "memory_mb",
        "-c",
        "memory_mb_used",
        "-c",
        "state",
    ).split()
    assert hypervisor == [HOST, "4096", "512", "up"]

    cli(env, tmp_path, "server", "delete", server_id)
    assert server_id in agent_converge_deletes(env, HOST)
    assert server_id not in cli(env, tmp_path, "server", "list", "-f", "value", "-c", "ID")


def cli_boot(env: ApiEnv, tmp_path: Path, image: str, flavor: str, name: str) -> str:
    """`openstack server create` with a new 256 MiB flavor; the host's agent reports it ACTIVE."""
    make_flavor(env, flavor, ram=256, vcpus=1)
    server_id = cli(
        env,
        tmp_path,
        "server",
        "create",
        "--flavor",
        flavor,
        "--image",
        image,
        # The CLI negotiates 2.37; without --nic it would ask for networks "auto".
        "--nic",
        "none",
        name,
        "-f",
        "value",
        "-c",
        "id",
    ).strip()
    agent_spawned(env, server_id)
    return server_id


def test_openstack_server_create_with_an_image_as_the_cli_sends_it(
    env: ApiEnv, image: str, tmp_path: Path
) -> None:
    """The CLI names the image twice: imageRef and a block_device_mapping_v2 image entry."""
    server_id = cli_boot(env, tmp_path, image, "cli.bdm", "cli-bdm")
    shown = cli(env, tmp_path, "server", "show", server_id, "-f", "value", "-c", "status")
    assert shown.strip() == "ACTIVE"
    cli(env, tmp_path, "server", "delete", server_id)
    assert server_id in agent_converge_deletes(env, HOST)


@pytest.mark.parametrize(
    ("mapping", "named"),
    [
        (
            {"source_type": "volume", "destination_type": "volume", "uuid": "v", "boot_index": 0},
            "source_type volume: filemem has no block storage",
        ),
        (
            {
                "source_type": "blank",
                "destination_type": "local",
                "boot_index": -1,
                "volume_size": 1,
            },
            "source_type blank",
        ),
        (
            {"source_type": "image", "destination_type": "volume", "boot_index": 0},
            "destination_type volume",
        ),
    ],
)
def test_block_devices_filemem_cannot_serve_are_refused_naming_them(
    env: ApiEnv, image: str, mapping: dict[str, object], named: str
) -> None:
    flavor = make_flavor(env, f"bdm.{len(named)}", ram=256)
    response = env.compute(
        "POST",
        "/servers",
        json={
            "server": {
                "name": "bdm",
                "flavorRef": flavor,
                "imageRef": image,
                "block_device_mapping_v2": [mapping],
            }
        },
    )
    assert response.status_code == 400, response.text
    message = response.json()["badRequest"]["message"]
    assert "block_device_mapping_v2[0] is not supported" in message and named in message


def test_openstack_cli_server_actions_hypervisors_and_services(
    env: ApiEnv, image: str, tmp_path: Path
) -> None:
    server_id = cli_boot(env, tmp_path, image, "cli.act", "cli-act")

    def status() -> str:
        return cli(
            env, tmp_path, "server", "show", server_id, "-f", "value", "-c", "status"
        ).strip()

    cli(env, tmp_path, "server", "reboot", "--hard", server_id)
    assert status() == "HARD_REBOOT"
    agent_spawned(env, server_id)
    cli(env, tmp_path, "server", "stop", server_id)
    shown = cli(
        env, tmp_path, "server", "show", server_id, "-f", "value", "-c", "OS-EXT-STS:task_state"
    )
    assert shown.strip() == "powering-off"

    assert HOST in cli(
        env, tmp_path, "hypervisor", "list", "-f", "value", "-c", "Hypervisor Hostname"
    )
    services = cli(
        env, tmp_path, "compute", "service", "list", "-f", "value", "-c", "Host", "-c", "Status"
    )
    assert f"{HOST} enabled" in services
    cli(env, tmp_path, "server", "delete", server_id)
    assert server_id in agent_converge_deletes(env, HOST)
