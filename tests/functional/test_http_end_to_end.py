"""End to end over real HTTP: standalone Placement, filemem-api, filemem-compute agents, guests."""

from __future__ import annotations

import signal
import subprocess
import time
import uuid as uuidlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import openstack
import pytest

from devtools.test_image import TestImage
from tests.functional.cloud import TOKEN, Cloud, domain_exists, memory_dirs
from tests.functional.conftest import REPO
from tests.functional.test_reconnect import stop_libvirtd

FB_HOST, RAM_HOST = "fb-host", "ram-host"


@pytest.fixture
def cloud(libvirtd: None) -> Iterator[Cloud]:
    cloud = Cloud()
    try:
        yield cloud
    finally:
        cloud.close()


@pytest.fixture
def image(cloud: Cloud, test_image: TestImage) -> str:
    return cloud.test_image(test_image.kernel, test_image.initrd, test_image.cmdline())


def test_openstacksdk_end_to_end(cloud: Cloud, image: str) -> None:
    cloud.start_agent(FB_HOST, 1024)
    conn = openstack.connection.Connection(
        auth_type="admin_token", auth={"endpoint": f"{cloud.api_url}/v2.1", "token": TOKEN}
    )
    flavor = conn.compute.create_flavor(name="sdk.small", ram=256, vcpus=1, disk=0)
    assert "sdk.small" in [f.name for f in conn.compute.flavors()]

    server = conn.compute.create_server(
        name="sdk-vm", flavor_id=flavor.id, image_id=image, networks="none"
    )
    server = conn.compute.wait_for_server(server, status="ACTIVE", wait=180)
    assert server.compute_host == FB_HOST
    placement = cloud.placement()
    _, allocations = placement.get_allocations(server.id)
    assert [r["MEMORY_MB"] for r in allocations.values()] == [256]
    [memory_dir] = memory_dirs(server.id)
    assert (memory_dir / "pc.ram").stat().st_size == 256 * 1024 * 1024

    conn.compute.stop_server(server)
    conn.compute.wait_for_server(server, status="SHUTOFF", wait=120)
    assert memory_dirs(server.id) == [], "a stopped guest's memory file is removed"
    conn.compute.start_server(server)
    conn.compute.wait_for_server(server, status="ACTIVE", wait=120)
    conn.compute.reboot_server(server, "HARD")
    cloud.wait_status(server.id, "ACTIVE")
    assert [s.name for s in conn.compute.servers()] == ["sdk-vm"]

    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=120)
    assert not domain_exists(server.id) and memory_dirs(server.id) == []
    assert placement.get_allocations(server.id)[1] == {}


def test_huge_page_flavor_needs_a_host_without_file_backed_memory(
    cloud: Cloud,
    image: str,
) -> None:
    cloud.start_agent(FB_HOST, 1024)
    flavor = cloud.flavor("huge", 128, {"hw:mem_page_size": "2MB"})
    refused = cloud.create("huge-1", flavor, image)
    server = cloud.wait_status(refused, "ERROR")
    assert "No valid host" in server["fault"]["message"]
    assert "hw:mem_page_size" in server["fault"]["message"]

    cloud.start_agent(RAM_HOST, 0)
    landed = cloud.create("huge-2", flavor, image)
    server = cloud.wait_status(landed, "ACTIVE", timeout=180)
    assert server["OS-EXT-SRV-ATTR:host"] == RAM_HOST


def test_parallel_creates_get_exactly_the_capacity(cloud: Cloud, image: str) -> None:
    cloud.start_agent(FB_HOST, 800)  # room for 3 guests of 256 MiB
    flavor = cloud.flavor("m256", 256)
    with ThreadPoolExecutor(max_workers=6) as pool:
        uuids = list(pool.map(lambda i: cloud.create(f"par-{i}", flavor, image), range(6)))

    def settled() -> bool:
        servers = [cloud.server(u) for u in uuids]
        return all(
            s is not None
            and s["status"] in ("ACTIVE", "ERROR")
            and not s.get("OS-EXT-STS:task_state")
            for s in servers
        )

    cloud.wait_for(settled, "all servers ACTIVE or ERROR", 300)
    statuses = {u: cloud.server(u)["status"] for u in uuids}  # type: ignore[index]
    active = [u for u, s in statuses.items() if s == "ACTIVE"]
    assert len(active) == 3, statuses
    placement = cloud.placement()
    provider = cloud.hypervisor(FB_HOST)
    assert provider is not None
    consumers = {u for u in uuids if placement.get_allocations(u)[1]}
    assert consumers == set(active), "allocations are exactly the running guests"
    assert all(domain_exists(u) for u in active)


def test_agent_killed_mid_boot_and_mid_delete_converges(cloud: Cloud, image: str) -> None:
    cloud.start_agent(FB_HOST, 1024)
    flavor = cloud.flavor("m256", 256)
    uuid = cloud.create("crashy", flavor, image)
    cloud.wait_for(lambda: domain_exists(uuid), "the guest defined in libvirt", 120)
    cloud.kill(FB_HOST)  # before it could report ACTIVE (or right after: both must converge)
    cloud.start_agent(FB_HOST, 1024)
    cloud.wait_status(uuid, "ACTIVE")
    assert len(memory_dirs(uuid)) == 1, "the restarted agent did not spawn a second guest"

    assert cloud.http.delete(f"/servers/{uuid}").status_code == 204
    cloud.wait_for(lambda: not domain_exists(uuid), "the guest destroyed", 120)
    cloud.kill(FB_HOST)  # maybe before it told the API the guest is gone
    cloud.start_agent(FB_HOST, 1024)
    cloud.wait_for(lambda: cloud.server(uuid) is None, "the server row gone", 120)
    assert memory_dirs(uuid) == []
    assert cloud.placement().get_allocations(uuid)[1] == {}
    assert not (cloud.base / FB_HOST / "instances" / uuid).exists()


def test_agent_sigterm_leaves_guests_running(cloud: Cloud, image: str) -> None:
    cloud.start_agent(FB_HOST, 1024)
    uuid = cloud.create("steady", cloud.flavor("m256", 256), image)
    cloud.wait_status(uuid, "ACTIVE")
    cloud.kill(FB_HOST, signal.SIGTERM)
    time.sleep(1)
    assert domain_exists(uuid)
    assert cloud.server(uuid)["status"] == "ACTIVE"  # type: ignore[index]
    assert str(uuidlib.UUID(uuid)) == uuid


def test_agent_survives_a_libvirtd_restart(cloud: Cloud, image: str) -> None:
    cloud.start_agent(FB_HOST, 1024)
    flavor = cloud.flavor("m256", 256)
    first = cloud.create("before", flavor, image)
    cloud.wait_status(first, "ACTIVE")
    stop_libvirtd()
    try:
        time.sleep(3)  # the agent's watch passes fail meanwhile; it must keep retrying
    finally:
        subprocess.run([str(REPO / "scripts" / "start-libvirt")], check=True, capture_output=True)
    second = cloud.create("after", flavor, image)
    cloud.wait_status(second, "ACTIVE")
    assert domain_exists(first) and cloud.server(first)["status"] == "ACTIVE"  # type: ignore[index]
