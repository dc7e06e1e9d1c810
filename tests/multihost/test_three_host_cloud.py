"""A 3-host cloud: agents register, guests run on their host's store only, API failover."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.cloud import cloud as cloudlib
from devtools.cloud import control_plane, namespaces, procs
from devtools.cloud.spec import MEMORY_BACKING_DIR, HostSpec
from tests.multihost.conftest import cloud_up

# Simulated hosts, each with a libvirtd of its own in a namespace: needs libvirtd.
pytestmark = pytest.mark.functional

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cloud() -> Iterator[cloudlib.Cloud]:
    # host3 runs without file-backed memory (RAM-backed guests), host2 on a smaller store.
    started = time.monotonic()
    up = cloud_up(3, {2: HostSpec(2, 768, True), 3: HostSpec(3, 1024, False)})
    print(f"3-host cloud up in {time.monotonic() - started:.1f} s")
    yield up
    assert cloudlib.down(up.spec.name, root=up.spec.root)


def api(cloud: cloudlib.Cloud, index: int = 0) -> httpx.Client:
    return httpx.Client(
        base_url=f"{cloud.plane.api_urls[index]}/v2.1",
        headers={"X-Auth-Token": cloud.token},
        timeout=30,
    )


def wait_for(
    what: str, done: Callable[[], bool], cloud: cloudlib.Cloud, timeout: float = 90
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.3)
    logs = "".join(
        f"\n--- {p.name} ---\n{procs.log_tail(p, 1500)}" for p in sorted(cloud.log_dir.glob("*"))
    )
    raise AssertionError(f"timed out waiting for {what}{logs}")


def server(http: httpx.Client, uuid: str) -> dict[str, Any] | None:
    answer = http.get(f"/servers/{uuid}")
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    return dict(answer.json()["server"])


def create(http: httpx.Client, name: str, host: str) -> str:
    image = http.get("/images").json()["images"][0]["id"]
    flavor = next(f["id"] for f in http.get("/flavors").json()["flavors"] if f["name"] == "m1.tiny")
    body = {
        "name": name,
        "flavorRef": flavor,
        "imageRef": image,
        "availability_zone": f"nova:{host}",
    }
    answer = http.post("/servers", json={"server": body})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["server"]["id"])


def gone(http: httpx.Client, uuid: str) -> Callable[[], bool]:
    return lambda: server(http, uuid) is None


def wait_active(cloud: cloudlib.Cloud, http: httpx.Client, uuid: str) -> dict[str, Any]:
    def active() -> bool:
        found = server(http, uuid)
        return bool(found and found["status"] == "ACTIVE")

    wait_for(f"server {uuid} ACTIVE", active, cloud)
    found = server(http, uuid)
    assert found is not None
    return found


def domains(cloud: cloudlib.Cloud, host: HostSpec) -> list[str]:
    out = subprocess.run(
        ["virsh", "-c", cloud.spec.libvirt_uri(host), "list", "--all", "--name"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()


def memory_files(cloud: cloudlib.Cloud, host: HostSpec) -> str:
    holder = namespaces.holder_pid(cloud.spec, host)
    assert holder is not None
    return namespaces.run_in(holder, ["find", str(MEMORY_BACKING_DIR), "-name", "pc.ram"])


def test_agents_register_with_their_capacity(cloud: cloudlib.Cloud) -> None:
    with api(cloud) as http:
        hyps = http.get("/os-hypervisors").json()["hypervisors"]
    assert sorted(h["hypervisor_hostname"] for h in hyps) == ["host1", "host2", "host3"]
    placement = httpx.Client(
        base_url=cloud.plane.placement_url,
        headers={"X-Auth-Token": "admin", "OpenStack-API-Version": "placement 1.37"},
    )
    providers = placement.get("/resource_providers").json()["resource_providers"]
    by_name = {p["name"]: p["uuid"] for p in providers}
    assert sorted(by_name) == ["host1", "host2", "host3"]
    for host in cloud.spec.hosts:
        uuid = by_name[host.name]
        inventory = placement.get(f"/resource_providers/{uuid}/inventories").json()
        traits = placement.get(f"/resource_providers/{uuid}/traits").json()["traits"]
        if host.file_backed:
            assert inventory["inventories"]["MEMORY_MB"]["total"] == host.file_backed_memory_mb
            assert "COMPUTE_MEM_BACKING_FILE" in traits
        else:
            assert "COMPUTE_MEM_BACKING_FILE" not in traits
    placement.close()


def test_guests_run_on_their_host_only(cloud: cloudlib.Cloud) -> None:
    h1, h2, h3 = cloud.spec.hosts
    env = {
        **os.environ,
        "OS_CLIENT_CONFIG_FILE": str(cloud.clouds_yaml),
        "OS_CLOUD": "filemem-cloud",
    }
    # One through the real openstack CLI (zone:host needs an admin, which the token is).
    cli = subprocess.run(
        [
            str(REPO / ".venv" / "bin" / "openstack"),
            "server",
            "create",
            "--flavor",
            "m1.tiny",
            "--image",
            "filemem-test",
            "--no-network",
            "--availability-zone",
            "nova:host2",
            "-f",
            "json",
            "cli-guest",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert cli.returncode == 0, cli.stderr
    uuids = {h2.name: json.loads(cli.stdout)["id"]}
    with api(cloud) as http:
        uuids[h1.name] = create(http, "api-guest-1", "host1")
        uuids[h3.name] = create(http, "api-guest-3", "host3")
        for host in cloud.spec.hosts:
            found = wait_active(cloud, http, uuids[host.name])
            assert found["OS-EXT-SRV-ATTR:host"] == host.name
        for host in cloud.spec.hosts:
            mine = f"instance-{uuids[host.name]}"
            assert mine in domains(cloud, host)
            for other in cloud.spec.hosts:
                if other is not host:
                    assert mine not in domains(cloud, other), f"{mine} seen on {other.name}"
            files = memory_files(cloud, host)
            # libvirt shortens the domain name in the directory: match the uuid's start.
            prefix = mine[:20]
            if host.file_backed:
                assert prefix in files, f"{host.name}: {files}"
            else:
                assert prefix not in files
            for other in cloud.spec.hosts:
                if other is not host:
                    assert prefix not in memory_files(cloud, other)
        for uuid in uuids.values():
            assert http.delete(f"/servers/{uuid}").status_code == 204
        for uuid in uuids.values():
            wait_for(f"{uuid} deleted", gone(http, uuid), cloud)
    for host in cloud.spec.hosts:
        assert not [d for d in domains(cloud, host) if d.startswith("instance-")]


def test_agents_carry_on_through_the_other_api(cloud: cloudlib.Cloud) -> None:
    pid_file = control_plane.api_process(cloud.spec, 1)
    pid = procs.recorded_pid(pid_file)
    assert pid is not None, "filemem-api 1 is not running"
    os.kill(pid, signal.SIGKILL)
    while procs.alive(pid):
        time.sleep(0.1)
    try:
        with api(cloud, 1) as http:
            uuid = create(http, "after-failover", "host1")
            found = wait_active(cloud, http, uuid)
            assert found["OS-EXT-SRV-ATTR:host"] == "host1"
            assert http.delete(f"/servers/{uuid}").status_code == 204
            wait_for("deleted through API 2", lambda: server(http, uuid) is None, cloud)
            # Every agent keeps its heartbeat through API 2: all hypervisors stay up.
            states = {
                h["hypervisor_hostname"]: h["state"]
                for h in http.get("/os-hypervisors").json()["hypervisors"]
            }
            assert states == {"host1": "up", "host2": "up", "host3": "up"}
        compute_log = (cloud.log_dir / "host1-compute.log").read_text()
        assert cloud.plane.api_urls[1] in compute_log  # it said it moved on
    finally:
        control_plane.api_process(cloud.spec, 1, start=True)
