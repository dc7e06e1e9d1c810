"""Two reconcile agents on real libvirtds (simulated hosts) carry out a live migration as the
contract says; the API side is the in-memory FakeAgentApi (the real one is wt-lmapi's)."""

from __future__ import annotations

import time
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from devtools.cloud.spec import CloudSpec
from devtools.test_image import READY_LINE, ensure_test_image
from filemem import conf as filemem_conf
from filemem.common.guests import Image, PowerState
from filemem.compute.host import ComputeHost
from filemem.compute.reconcile.loop import ReconcileLoop
from filemem.compute.reconcile.plan import DesiredInstance, IncomingMigration, LiveMigrationSpec
from filemem.exceptions import GuestNotFound
from filemem.placement.embedded import EmbeddedPlacement
from tests.multihost.conftest import hosts_down, hosts_up
from tests.multihost.test_hosts import memory_files, wait_console
from tests.unit.test_agent_fake_driver import SMALL, FakeAgentApi, building

# Simulated hosts, each with a libvirtd of its own in a namespace: needs libvirtd.
pytestmark = pytest.mark.functional

IMAGE_DIR = Path("/var/lib/filemem/images/test")
STORE_MB = 1024


@dataclass
class Agent:
    host: ComputeHost
    api: FakeAgentApi
    loop: ReconcileLoop

    def converge(self) -> float:
        start = time.monotonic()
        self.loop.run_once(None)
        return time.monotonic() - start

    def events(self, mid: str) -> list[str]:
        return [e["event"] for e in self.api.migration_events.get(mid, [])]


@pytest.fixture(scope="module")
def cloud() -> Iterator[CloudSpec]:
    spec = hosts_up(2)
    yield spec
    hosts_down(spec)


def agent(spec: CloudSpec, index: int, tmp_path: Path, placement: EmbeddedPlacement) -> Agent:
    host = spec.hosts[index - 1]
    config = tmp_path / f"{host.name}.conf"
    config.write_text(
        f"[DEFAULT]\nhost = {host.name}-{uuidlib.uuid4().hex[:6]}\n"
        f"state_path = {spec.host_dir(host) / 'state'}\nram_allocation_ratio = 1.0\n"
        f"[libvirt]\nvirt_type = qemu\nfile_backed_memory = {STORE_MB}\n"
        f"connection_uri = {spec.libvirt_uri(host)}\n"
        f"qemu_conf_path = {spec.host_dir(host) / 'etc' / 'qemu.conf'}\n"
        f"live_migration_inbound_addr = {spec.address_of(host)}\n"
        # 32 MiB touched at 16 MiB/s: the copy lasts > 2 s, so progress is always sampled.
        "live_migration_bandwidth = 16\n"
    )
    conf = filemem_conf.load(config_files=[str(config)])
    compute = ComputeHost.from_conf(conf, client=placement.client())
    compute.tracker.sync()
    api = FakeAgentApi()
    return Agent(compute, api, ReconcileLoop(compute, api, wait=0))


def test_agents_live_migrate_a_file_backed_guest(
    cloud: CloudSpec, tmp_path: Path, embedded_placement: EmbeddedPlacement
) -> None:
    source = agent(cloud, 1, tmp_path, embedded_placement)
    dest = agent(cloud, 2, tmp_path, embedded_placement)
    files = ensure_test_image(IMAGE_DIR)
    image = Image(
        kind="kernel", kernel=files.kernel, initrd=files.initrd, cmdline=files.cmdline(touch_mb=32)
    )
    want: DesiredInstance = building(SMALL, image=image)
    uuid, mid = want.uuid, str(uuidlib.uuid4())
    name = f"instance-{uuid}"[:20]
    try:
        source.api.desired[uuid] = want
        source.converge()
        wait_console(source.host.driver.console_log(uuid), READY_LINE)
        want = replace(want, vm_state="active", task_state="migrating")

        dest.api.desired[uuid] = replace(want, incoming_migration=IncomingMigration(mid, "h1"))
        dest.converge()
        assert dest.events(mid) == ["prepared"]

        source.loop.heartbeat()
        address = source.api.details[-1]["migration_address"]  # type: ignore[index]
        assert address == cloud.address_of(cloud.hosts[0])
        lm = LiveMigrationSpec(
            mid, "h2", cloud.address_of(cloud.hosts[1]), STORE_MB, dest_prepared=True
        )
        source.api.desired[uuid] = replace(want, live_migration=lm)
        assert source.converge() < 5, "the pass must not wait for the migration"
        assert source.events(mid)[0] == "started"
        deadline = time.monotonic() + 120
        while "completed" not in source.events(mid):
            assert "failed" not in source.events(mid), source.api.migration_events[mid]
            assert time.monotonic() < deadline, source.events(mid)
            source.converge()  # reconciling goes on meanwhile; nothing is started twice
            time.sleep(0.3)
        assert source.events(mid).count("started") == 1
        assert "progress" in source.events(mid)  # the bandwidth cap makes the copy last
        source.loop.executor.migrations.wait_all(10)
        assert source.api.events[uuid][-1]["event"] == "compute_live_migration"
        assert source.api.events[uuid][-1]["result"] == "Success"

        with pytest.raises(GuestNotFound):
            source.host.driver.get_guest(uuid)
        source.converge()  # the API has not caught up: no respawn, no ERROR report
        assert not any(r.get("vm_state") == "error" for r in source.api.reports.get(uuid, []))

        dest.converge()
        assert dest.events(mid) == ["prepared", "completed"]
        moved = dest.host.driver.get_guest(uuid)
        assert moved.power_state == PowerState.RUNNING and moved.file_backed
        assert any(name in f for f in memory_files(cloud, cloud.hosts[1]))
        assert not any(name in f for f in memory_files(cloud, cloud.hosts[0]))
    finally:
        source.host.driver.destroy(uuid)
        dest.host.driver.destroy(uuid)
