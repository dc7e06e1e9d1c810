"""Live migration's API side against real standalone Placement and filemem-api over HTTP: the
test plays both agents by the contract (registration, events) and checks every allocation in
Placement at each step; the `openstack` and `filemem` CLIs drive the operator's side.

Real guests moving between namespaced hosts are the end-to-end test written after the merge;
this one proves the API half of the contract."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openstack.config import loader
from openstack.connection import Connection

from devtools.test_image import TestImage
from filemem.common.resources import MEMORY_MB, VCPU
from filemem.placement.client import PlacementClient
from tests.functional.cloud import TOKEN, Cloud
from tests.functional.conftest import REPO

OPENSTACK = str(REPO / ".venv" / "bin" / "openstack")
FILEMEM = str(REPO / ".venv" / "bin" / "filemem")
CAPABLE = {"file_backed_memory": True, "live_migration": True}
RAM = 256


class Hosts:
    """The cloud, its Placement, and the agents' side of the contract played over HTTP."""

    def __init__(self, cloud: Cloud, state: Path) -> None:
        self.cloud = cloud
        self.placement: PlacementClient = cloud.placement()
        self.agent = httpx.Client(
            base_url=f"{cloud.api_url}/filemem/v1", timeout=30, headers={"X-Auth-Token": TOKEN}
        )
        self.providers: dict[str, str] = {}
        self.environ = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        clouds = state / "clouds.yaml"
        clouds.write_text(
            "clouds:\n  lm:\n    auth_type: admin_token\n    auth:\n"
            f"      endpoint: {cloud.api_url}/v2.1\n      token: {TOKEN}\n"
            f"    identity_endpoint_override: {cloud.api_url}/identity/v3\n"
            f"    compute_endpoint_override: {cloud.api_url}/v2.1\n"
            f"    image_endpoint_override: {cloud.api_url}/image\n"
        )
        clouds.chmod(0o600)
        self.environ.update(
            OS_CLIENT_CONFIG_FILE=str(clouds),
            OS_CLOUD="lm",
            FILEMEM_ENDPOINT=cloud.api_url,
            FILEMEM_TOKEN=TOKEN,
        )

    def register(self, host: str, memory_mb: int = 1024, **fields: Any) -> str:
        provider = self.providers.setdefault(host, str(uuidlib.uuid4()))
        self.placement.ensure_resource_provider(provider, host)
        self.placement.set_inventories(
            provider,
            {MEMORY_MB: {"total": memory_mb, "max_unit": memory_mb}, VCPU: {"total": 16}},
        )
        body = {
            "provider_uuid": provider,
            "file_backed": True,
            "file_backed_memory_mb": memory_mb,
            "capabilities": CAPABLE,
            "version": "test",
            "migration_address": "127.0.0.1",
            "store_free_mb": 4096,
            **fields,
        }
        response = self.agent.put(f"/services/{host}", json=body)
        assert response.status_code == 200, response.text
        return provider

    def usage(self, host: str) -> int:
        return int(self.placement.get_usages(self.providers[host]).get(MEMORY_MB, 0))

    def held(self, consumer: str) -> dict[str, int]:
        _, allocations = self.placement.get_allocations(consumer)
        names = {rp: host for host, rp in self.providers.items()}
        return {names[rp]: int(res[MEMORY_MB]) for rp, res in allocations.items()}

    def running(self, uuid: str) -> None:
        """What the host's agent reports once the guest runs."""
        body = {"vm_state": "active", "task_state": None, "power_state": 1}
        response = self.agent.patch(f"/instances/{uuid}", json=body)
        assert response.status_code == 200, response.text

    def event(self, migration_uuid: str, name: str, **body: Any) -> str:
        response = self.agent.post(
            f"/migrations/{migration_uuid}/events", json={"event": name, **body}
        )
        assert response.status_code == 200, response.text
        return str(response.json()["status"])

    def view(self, host: str, uuid: str) -> dict[str, Any] | None:
        response = self.agent.get(f"/hosts/{host}/instances")
        response.raise_for_status()
        return next((v for v in response.json()["instances"] if v["uuid"] == uuid), None)

    def migration(self, uuid: str) -> dict[str, Any]:
        response = self.cloud.http.get(
            f"/os-migrations?instance_uuid={uuid}",
            headers={"OpenStack-API-Version": "compute 2.23"},
        )
        response.raise_for_status()
        rows = response.json()["migrations"]
        assert rows, f"no migration of {uuid}"
        return dict(rows[0])

    def migration_uuid(self, uuid: str) -> str:
        """The consumer of the newest migration: the source host's view names it."""
        migration = self.migration(uuid)
        view = self.view(migration["source_compute"], uuid)
        assert view is not None and view["live_migration"] is not None, view
        return str(view["live_migration"]["migration_uuid"])

    def openstack(self, *args: str) -> str:
        result = subprocess.run(
            [OPENSTACK, *args], env=self.environ, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    def sdk(self) -> Connection:
        config = loader.OpenStackConfig(config_files=[self.environ["OS_CLIENT_CONFIG_FILE"]])
        return Connection(config=config.get_one("lm"))

    def migrate(self, uuid: str, host: str | None, version: str = "2.30") -> httpx.Response:
        body = {"os-migrateLive": {"host": host, "block_migration": "auto"}}
        return self.cloud.http.post(
            f"/servers/{uuid}/action",
            json=body,
            headers={"OpenStack-API-Version": f"compute {version}"},
        )


@pytest.fixture
def hosts(test_image: TestImage) -> Iterator[Hosts]:
    cloud = Cloud()
    try:
        yield Hosts(cloud, cloud.base)
    finally:
        cloud.close()


def boot(hosts: Hosts, image: TestImage, name: str) -> str:
    cloud = hosts.cloud
    flavor = cloud.flavor(f"lm-{uuidlib.uuid4().hex[:6]}", RAM)
    image_id = cloud.test_image(image.kernel, image.initrd, image.cmdline())
    uuid = cloud.create(name, flavor, image_id)
    cloud.wait_for(lambda: (cloud.server(uuid) or {}).get("OS-EXT-SRV-ATTR:host"), "scheduled")
    hosts.running(uuid)
    return uuid


def test_live_migration_contract_with_real_placement(hosts: Hosts, test_image: TestImage) -> None:
    hosts.register("lm-a")
    uuid = boot(hosts, test_image, "mover")
    hosts.register("lm-b")
    assert hosts.held(uuid) == {"lm-a": RAM}

    # The operator: openstack server migrate --live-migration --host (2.37, scheduler on B).
    hosts.openstack("server", "migrate", "--live-migration", "--host", "lm-b", uuid)
    migration_uuid = hosts.migration_uuid(uuid)
    assert hosts.held(migration_uuid) == {"lm-a": RAM}
    assert hosts.held(uuid) == {"lm-b": RAM}
    assert (hosts.usage("lm-a"), hosts.usage("lm-b")) == (RAM, RAM)
    listed = json.loads(
        hosts.openstack("server", "migration", "list", "--server", uuid, "-f", "json")
    )
    assert [(m["Status"], m["Type"]) for m in listed] == [("queued", "live-migration")]
    incoming = hosts.view("lm-b", uuid)
    assert incoming is not None and incoming["incoming_migration"]["source_host"] == "lm-a"

    # The agents: prepared (destination), started and progress (source).
    assert hosts.event(migration_uuid, "prepared") == "queued"
    assert hosts.event(migration_uuid, "started") == "running"
    hosts.event(
        migration_uuid,
        "progress",
        memory_total_bytes=RAM << 20,
        memory_processed_bytes=100 << 20,
        memory_remaining_bytes=156 << 20,
    )
    mid = str(hosts.migration(uuid)["id"])
    # `openstack server migration show SERVER ID` of python-openstackclient 10.5 passes the
    # server and migration ids to openstacksdk swapped (GET /servers/<id>/migrations/<server>)
    # whatever the cloud; openstacksdk itself, as the CLI means to call it:
    shown = hosts.sdk().compute.get_server_migration(mid, server=uuid, ignore_missing=False)
    assert shown.memory_total_bytes == RAM << 20, shown
    assert shown.memory_processed_bytes == 100 << 20
    assert shown.status == "running" and shown.dest_compute == "lm-b"
    hosts.openstack("server", "migration", "force", "complete", uuid, mid)
    source = hosts.view("lm-a", uuid)
    assert source is not None and source["live_migration"]["force_complete"] is True
    assert (hosts.usage("lm-a"), hosts.usage("lm-b")) == (RAM, RAM)

    assert hosts.event(migration_uuid, "completed") == "completed"
    assert hosts.held(uuid) == {"lm-b": RAM} and hosts.held(migration_uuid) == {}
    assert (hosts.usage("lm-a"), hosts.usage("lm-b")) == (0, RAM)
    server = hosts.cloud.server(uuid)
    assert server is not None and server["OS-EXT-SRV-ATTR:host"] == "lm-b"
    assert server["status"] == "ACTIVE"

    # Back with the scheduler's choice, aborted: the rollback is exact.
    assert hosts.migrate(uuid, None).status_code == 202
    back = hosts.migration_uuid(uuid)
    assert hosts.held(back) == {"lm-b": RAM} and hosts.held(uuid) == {"lm-a": RAM}
    mid = str(hosts.migration(uuid)["id"])
    hosts.openstack("server", "migration", "abort", uuid, mid)
    source = hosts.view("lm-b", uuid)
    assert source is not None and source["live_migration"]["abort"] is True
    assert hosts.event(back, "cancelled", reason="aborted by the operator") == "cancelled"
    assert hosts.held(uuid) == {"lm-b": RAM} and hosts.held(back) == {}
    assert (hosts.usage("lm-a"), hosts.usage("lm-b")) == (0, RAM)

    # A libvirt failure mid-way: the same exact rollback, the reason kept.
    assert hosts.migrate(uuid, "lm-a").status_code == 202
    failing = hosts.migration_uuid(uuid)
    hosts.event(failing, "started")
    assert hosts.event(failing, "failed", reason="Unable to connect to lm-a") == "failed"
    assert hosts.event(failing, "completed") == "failed"
    assert hosts.held(uuid) == {"lm-b": RAM} and hosts.held(failing) == {}
    assert (hosts.usage("lm-a"), hosts.usage("lm-b")) == (0, RAM)
    assert hosts.migration(uuid)["status"] == "failed"


def test_prechecks_and_maintenance(hosts: Hosts, test_image: TestImage) -> None:
    hosts.register("lm-old", capabilities=None)
    uuid = boot(hosts, test_image, "old-host-guest")
    hosts.register("lm-new")
    refused = hosts.migrate(uuid, "lm-new", "2.33")
    assert refused.status_code == 400
    assert "(no file-backed memory support) to file-backed host lm-new" in refused.text
    assert hosts.migrate(uuid, "lm-new", "2.34").status_code == 202
    assert hosts.migration(uuid)["status"] == "error"
    assert hosts.held(uuid) == {"lm-old": RAM} and hosts.usage("lm-new") == 0

    # A capable source; its second guest is stopped. Drain the host with filemem's CLI while
    # a stand-in for both agents carries each queued migration through.
    hosts.register("lm-old")
    # A disabled host takes no new guest: while lm-new is, the boot can only go to lm-old.
    toggle = {"host": "lm-new", "binary": "nova-compute"}
    assert hosts.cloud.http.put("/os-services/disable", json=toggle).status_code == 200
    stopped = boot(hosts, test_image, "stopped-guest")
    assert hosts.held(stopped) == {"lm-old": RAM}
    assert hosts.cloud.http.put("/os-services/enable", json=toggle).status_code == 200
    hosts.agent.patch(f"/instances/{stopped}", json={"vm_state": "stopped", "power_state": 4})
    done = threading.Event()
    agents = threading.Thread(target=play_agents, args=(hosts, done), daemon=True)
    agents.start()
    try:
        result = subprocess.run(
            [FILEMEM, "host", "drain", "lm-old", "--yes", "--timeout", "60"],
            env=hosts.environ,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    finally:
        done.set()
        agents.join(10)
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "completed" in result.stdout and "only ACTIVE or PAUSED" in result.stdout
    assert hosts.held(uuid) == {"lm-new": RAM}
    assert hosts.held(stopped) == {"lm-old": RAM}
    services = hosts.cloud.http.get("/os-services?host=lm-old").json()["services"]
    assert services[0]["status"] == "disabled"
    assert services[0]["disabled_reason"] == "draining"
    # Deleting the drained host is refused while it hosts a guest.
    assert hosts.cloud.http.delete(f"/os-services/{services[0]['id']}").status_code == 409
    hosts.cloud.http.delete(f"/servers/{stopped}")
    gone = hosts.agent.post(f"/instances/{stopped}/gone")
    assert gone.status_code == 204, gone.text
    assert hosts.cloud.http.delete(f"/os-services/{services[0]['id']}").status_code == 204
    assert hosts.placement.get_resource_provider(hosts.providers["lm-old"]) is None


def play_agents(hosts: Hosts, done: threading.Event) -> None:
    """Both agents, reduced to their events: every queued live migration completes."""
    while not done.is_set():
        rows = hosts.cloud.http.get(
            "/os-migrations?status=queued&migration_type=live-migration",
            headers={"OpenStack-API-Version": "compute 2.23"},
        ).json()["migrations"]
        for row in rows:
            migration_uuid = hosts.migration_uuid(row["instance_uuid"])
            for name in ("prepared", "started"):
                hosts.event(migration_uuid, name)
            figures = {"memory_total_bytes": RAM << 20, "memory_remaining_bytes": 0}
            hosts.event(migration_uuid, "progress", memory_processed_bytes=RAM << 20, **figures)
            hosts.event(migration_uuid, "completed")
        time.sleep(0.2)


def test_filemem_server_migrate_waits_for_the_agents(hosts: Hosts, test_image: TestImage) -> None:
    hosts.register("lm-c")
    uuid = boot(hosts, test_image, "waited")
    hosts.register("lm-d")
    done = threading.Event()
    agents = threading.Thread(target=play_agents, args=(hosts, done), daemon=True)
    agents.start()
    try:
        result = subprocess.run(
            [FILEMEM, "server", "migrate", "waited", "--host", "lm-d", "--wait", "--json"],
            env=hosts.environ,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        done.set()
        agents.join(10)
    assert result.returncode == 0, (result.stdout, result.stderr)
    outcome = json.loads(result.stdout)
    assert (outcome["status"], outcome["source"], outcome["dest"]) == ("completed", "lm-c", "lm-d")
    assert hosts.held(uuid) == {"lm-d": RAM} and hosts.usage("lm-c") == 0
    # A forced move to the host it is on is refused: exit 1 with the API's reason.
    again = subprocess.run(
        [FILEMEM, "server", "migrate", uuid, "--host", "lm-d", "--force"],
        env=hosts.environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 1 and "current host (lm-d)" in again.stdout, again
