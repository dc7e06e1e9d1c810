"""The built-in network over HTTP: filemem-api (a subprocess, real Placement) allocates ports,
shows them as nova and Neutron do, and the `openstack` CLI uses them (no libvirtd needed)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.functional.api_fixtures import (
    TOKEN,
    ApiEnv,
    agent_spawned,
    agent_watch,
    api_env,
    make_flavor,
    make_image,
    register_host,
)
from tests.functional.test_api_openstack import OPENSTACK

HOST = "net-host"
NETWORK_ID = "5f0c3a52-1c7e-4d55-9f41-0c6d2b8e7a10"
NETWORK = f"[network]\ndriver = builtin\nname = private\nnetwork_id = {NETWORK_ID}\n"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    """An API whose network is a /29: five guest addresses, 10.66.0.2 to .6."""
    network = NETWORK + "cidr = 10.66.0.0/29\ndns_nameservers = 10.66.0.1\n"
    with api_env(tmp_path_factory.mktemp("api-network"), default=network) as running:
        register_host(running, HOST, memory_mb=8192, vcpus=16)
        yield running


@pytest.fixture(scope="module")
def catalogue(env: ApiEnv) -> dict[str, str]:
    return {"flavor": make_flavor(env, "net.small"), "image": make_image(env, "net-image")}


def openstack(env: ApiEnv, tmp_path: Path, *args: str) -> Any:
    """The openstack CLI with a clouds.yaml like the one `filemem up` writes; its JSON."""
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  filemem:\n    auth_type: admin_token\n    auth:\n"
        f"      endpoint: {env.url}/v2.1\n      token: {TOKEN}\n"
        f"    identity_endpoint_override: {env.url}/identity/v3\n"
        f"    image_endpoint_override: {env.url}/image\n"
        f"    network_endpoint_override: {env.url}/network\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    environ.update(OS_CLIENT_CONFIG_FILE=str(clouds), OS_CLOUD="filemem")
    result = subprocess.run(
        [str(OPENSTACK), *args, "-f", "json"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def create(env: ApiEnv, catalogue: dict[str, str], name: str, networks: Any) -> Any:
    body = {
        "name": name,
        "flavorRef": catalogue["flavor"],
        "imageRef": catalogue["image"],
        "networks": networks,
    }
    headers = {"OpenStack-API-Version": "compute 2.37"}
    return env.compute("POST", "/servers", json={"server": body}, headers=headers)


def server(env: ApiEnv, server_id: str) -> dict[str, Any]:
    response = env.compute("GET", f"/servers/{server_id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["server"]
    return found


def ports(env: ApiEnv) -> list[dict[str, Any]]:
    response = env.http.get("/network/v2.0/ports")
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()["ports"]
    return listed


def test_openstack_cli_network_server_and_port_lists(
    env: ApiEnv, catalogue: dict[str, str], tmp_path: Path
) -> None:
    (network,) = openstack(env, tmp_path, "network", "list")
    assert (network["ID"], network["Name"]) == (NETWORK_ID, "private")
    (subnet,) = openstack(env, tmp_path, "subnet", "list")
    assert subnet["Subnet"] == "10.66.0.0/29" and subnet["Network"] == NETWORK_ID

    created = openstack(
        env,
        tmp_path,
        "server",
        "create",
        "--flavor",
        "net.small",
        "--image",
        "net-image",
        "--network",
        "private",
        "cli-vm",
    )
    agent_spawned(env, created["id"])
    (listed,) = [s for s in openstack(env, tmp_path, "server", "list") if s["Name"] == "cli-vm"]
    assert listed["Networks"] == {"private": ["10.66.0.2"]}
    (port,) = openstack(env, tmp_path, "port", "list", "--server", "cli-vm")
    assert port["Fixed IP Addresses"][0]["ip_address"] == "10.66.0.2"
    assert port["MAC Address"].startswith("fa:16:3e:")
    # The agent is told what to plug: this port, its address and subnet.
    (instance,) = [i for i in agent_watch(env, HOST)["instances"] if i["uuid"] == created["id"]]
    (nic,) = instance["nics"]
    assert (nic["port_id"], nic["ip_address"], nic["mac_address"]) == (
        port["ID"],
        "10.66.0.2",
        port["MAC Address"],
    )
    assert (nic["cidr"], nic["gateway"], nic["dns_nameservers"]) == (
        "10.66.0.0/29",
        "10.66.0.1",
        ["10.66.0.1"],
    )
    assert env.compute("DELETE", f"/servers/{created['id']}").status_code == 204


def test_unknown_network_and_a_full_one(env: ApiEnv, catalogue: dict[str, str]) -> None:
    unknown = "0b5e6f6e-1111-4222-8333-444455556666"
    refused = create(env, catalogue, "nowhere", [{"uuid": unknown}])
    assert refused.status_code == 400
    assert refused.json()["badRequest"]["message"] == f"Network {unknown} could not be found."

    held = {p["fixed_ips"][0]["ip_address"] for p in ports(env)}
    booted = []
    while len(held) < 5:
        response = create(env, catalogue, f"fill-{len(held)}", "auto")
        assert response.status_code == 202, response.text
        booted.append(response.json()["server"]["id"])
        held = {p["fixed_ips"][0]["ip_address"] for p in ports(env)}
    assert held == {f"10.66.0.{n}" for n in range(2, 7)}
    response = create(env, catalogue, "one-too-many", "auto")
    assert response.status_code == 202, response.text
    late = server(env, response.json()["server"]["id"])
    assert late["status"] == "ERROR" and late["addresses"] == {}
    assert "No fixed IP addresses available for network" in late["fault"]["message"]
    assert env.placement.get_allocations(late["id"])[1] == {}
    assert len(ports(env)) == 5
    assert env.compute("DELETE", f"/servers/{late['id']}").status_code == 204
    assert len(ports(env)) == 5
