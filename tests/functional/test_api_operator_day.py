"""An operator's day with stock clients: zones, limits, quotas, hypervisor stats, usage, images."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.functional.api_fixtures import (
    ApiEnv,
    agent_spawned,
    api_env,
    create_server,
    make_flavor,
    make_image,
    register_host,
)
from tests.functional.test_api_openstack import cli, connect

HOSTS = ("day-host-1", "day-host-2")
PROJECT = "filemem"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("api-operator-day")) as running:
        for host in HOSTS:
            register_host(running, host, memory_mb=4096, vcpus=8, disk_gb=20)
        yield running


@pytest.fixture(scope="module")
def servers(env: ApiEnv) -> dict[str, Any]:
    """Two servers (512 MB/2 vCPUs and 256 MB/1 vCPU), both spawned by the 'agent'."""
    image = make_image(env, "day-image")
    big, small = make_flavor(env, "day.big", ram=512, vcpus=2), make_flavor(env, "day.small")
    ids = [create_server(env, "day-big", big, image), create_server(env, "day-small", small, image)]
    for server_id in ids:
        agent_spawned(env, server_id)
    return {"image": image, "ids": ids}


def get(env: ApiEnv, path: str, **params: Any) -> dict[str, Any]:
    response = env.compute("GET", path, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_availability_zones(env: ApiEnv, servers: dict[str, Any], tmp_path: Path) -> None:
    assert get(env, "/os-availability-zone") == {
        "availabilityZoneInfo": [
            {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}
        ]
    }
    (zone,) = get(env, "/os-availability-zone/detail")["availabilityZoneInfo"]
    assert set(zone["hosts"]) == set(HOSTS)
    compute = zone["hosts"][HOSTS[0]]["nova-compute"]
    assert compute["available"] is True and compute["active"] is True and compute["updated_at"]

    listed = cli(env, tmp_path, "availability", "zone", "list", "--compute", "-f", "value")
    assert listed.split() == ["nova", "available"]
    long = cli(env, tmp_path, "availability", "zone", "list", "--compute", "--long", "-f", "value")
    assert all(host in long for host in HOSTS)


def test_limits(env: ApiEnv, servers: dict[str, Any], tmp_path: Path) -> None:
    limits = get(env, "/limits")["limits"]
    assert limits["rate"] == []
    absolute = limits["absolute"]
    # [quota] defaults, nova's: 10 instances, 20 cores, 50 GiB.
    assert (absolute["maxTotalInstances"], absolute["maxTotalCores"]) == (10, 20)
    assert absolute["maxTotalRAMSize"] == 51200
    used = (absolute["totalInstancesUsed"], absolute["totalCoresUsed"], absolute["totalRAMUsed"])
    assert used == (2, 3, 768)

    shown = cli(env, tmp_path, "limits", "show", "--absolute", "-f", "value")
    rows = dict(line.rsplit(" ", 1) for line in shown.splitlines())
    assert rows["total_instances_used"] == "2" and rows["total_cores_used"] == "3"
    assert rows["total_ram_used"] == "768" and rows["max_total_instances"] == "10"


def test_quota_sets(env: ApiEnv, servers: dict[str, Any], tmp_path: Path) -> None:
    quota = get(env, f"/os-quota-sets/{PROJECT}")["quota_set"]
    assert quota["id"] == PROJECT
    assert (quota["instances"], quota["cores"], quota["ram"]) == (10, 20, 51200)
    assert get(env, f"/os-quota-sets/{PROJECT}/defaults")["quota_set"]["instances"] == 10
    detail = get(env, f"/os-quota-sets/{PROJECT}/detail")["quota_set"]
    assert detail["instances"] == {"limit": 10, "in_use": 2, "reserved": 0}

    sdk_quota = connect(env).compute.get_quota_set(PROJECT)
    assert (sdk_quota.instances, sdk_quota.cores, sdk_quota.ram) == (10, 20, 51200)
    # The CLI looks the project up in identity first, then sets and shows the quota set.
    cli(env, tmp_path, "quota", "set", "--instances", "5", "--cores", "8", PROJECT)
    shown = cli(env, tmp_path, "quota", "show", "--compute", PROJECT, "-f", "json")
    limits = {row["Resource"]: row["Limit"] for row in json.loads(shown)}
    assert (limits["instances"], limits["cores"], limits["ram"]) == (5, 8, 51200)
    reverted = env.compute("DELETE", f"/os-quota-sets/{PROJECT}")
    assert reverted.status_code == 202
    assert get(env, f"/os-quota-sets/{PROJECT}")["quota_set"]["instances"] == 10


def test_hypervisor_statistics(env: ApiEnv, servers: dict[str, Any], tmp_path: Path) -> None:
    stats = get(env, "/os-hypervisors/statistics")["hypervisor_statistics"]
    assert stats["count"] == 2 and stats["memory_mb"] == 8192 and stats["vcpus"] == 16
    assert stats["memory_mb_used"] == 768 and stats["vcpus_used"] == 3
    assert stats["free_ram_mb"] == 8192 - 768 and stats["running_vms"] == 2
    assert stats["local_gb"] == 40

    shown = cli(
        env,
        tmp_path,
        "hypervisor",
        "stats",
        "show",
        "-f",
        "value",
        "-c",
        "count",
        "-c",
        "memory_mb",
        "-c",
        "memory_mb_used",
        "-c",
        "running_vms",
    )
    assert shown.split() == ["2", "8192", "768", "2"]


def test_tenant_usage(env: ApiEnv, servers: dict[str, Any], tmp_path: Path) -> None:
    (usage,) = get(env, "/os-simple-tenant-usage", detailed="1")["tenant_usages"]
    assert usage["tenant_id"] == PROJECT and usage["total_hours"] >= 0
    assert {s["instance_id"] for s in usage["server_usages"]} == set(servers["ids"])
    assert "server_usages" not in get(env, "/os-simple-tenant-usage")["tenant_usages"][0]
    shown = get(env, f"/os-simple-tenant-usage/{PROJECT}", start="2000-01-01T00:00:00")
    assert len(shown["tenant_usage"]["server_usages"]) == 2
    assert get(env, "/os-simple-tenant-usage/nobody") == {"tenant_usage": {}}

    listed = cli(env, tmp_path, "usage", "list", "-f", "value")
    assert listed.startswith(f"{PROJECT} ") and "day-big" in listed and "day-small" in listed
    sdk_usage = connect(env).compute.get_usage(PROJECT)
    assert len(sdk_usage.server_usages) == 2
    # The CLI looks the project up in identity first: filemem answers for its one project.
    shown = json.loads(cli(env, tmp_path, "usage", "show", "--project", PROJECT, "-f", "json"))
    assert shown["Project"] == PROJECT and len(shown["Servers"]) == 2


def test_compute_images_in_nova_shape(env: ApiEnv, servers: dict[str, Any], tmp_path: Path) -> None:
    image = servers["image"]
    (listed,) = [i for i in get(env, "/images/detail")["images"] if i["id"] == image]
    assert (listed["status"], listed["progress"], listed["minDisk"], listed["minRam"]) == (
        "ACTIVE",
        100,
        0,
        0,
    )
    assert listed["OS-EXT-IMG-SIZE:size"] == 64 and listed["metadata"]["filemem_kind"] == "kernel"
    shown = get(env, f"/images/{image}")
    assert shown["image"] == listed

    conn = connect(env)
    assert image in [i.id for i in conn.compute.images()]
    assert conn.compute.get_image(image).name == "day-image"
    assert "day-image" in cli(env, tmp_path, "image", "list", "-f", "value", "-c", "Name")
    assert "day-image" in cli(env, tmp_path, "image", "show", image, "-f", "value", "-c", "name")
    listing = cli(env, tmp_path, "server", "list", "-f", "value", "-c", "Name", "-c", "Image")
    assert "day-big day-image" in listing
