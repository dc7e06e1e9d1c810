"""The agent's loops through FakeDriver and real embedded Placement: reconcile, heal, sync.

No libvirtd, no root: the hypervisor is the in-tree fake; Placement is the real app in-process.
The same behaviours are proven on real libvirt + QEMU in tests/functional.
"""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from filemem import conf as filemem_conf
from filemem.common.guests import Flavor, Image, PowerState
from filemem.common.resources import MEMORY_BACKING_FILE_TRAIT, MEMORY_MB, VCPU, guest_resources
from filemem.compute.agent_api import ApiUnavailable
from filemem.compute.host import ComputeHost
from filemem.compute.reconcile.loop import ReconcileLoop
from filemem.compute.reconcile.plan import DesiredInstance
from filemem.compute.resource_sync import ResourceSyncLoop
from filemem.exceptions import HypervisorUnavailable, InvalidGuestConfig
from filemem.placement.client import PlacementClient
from filemem.placement.embedded import EmbeddedPlacement
from filemem.virt.fake import FakeDriver

FILE_BACKED_MB = 2048
SMALL = Flavor("small", 1, 256)
HUGE = Flavor("huge", 1, 256, extra_specs={"hw:mem_page_size": "large"})
IMAGE = Image(kind="kernel", kernel=Path("/boot/vmlinuz"))


@dataclass
class FakeAgentApi:
    """The API side of the agent protocol, in memory: desired instances in, reports out."""

    desired: dict[str, DesiredInstance] = field(default_factory=dict)
    reports: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    gone_uuids: list[str] = field(default_factory=list)
    uploads: dict[str, bytes] = field(default_factory=dict)
    registered: list[str] = field(default_factory=list)
    usage: dict[str, dict[str, Any]] = field(default_factory=dict)
    consoles: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    migration_events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    details: list[Mapping[str, Any] | None] = field(default_factory=list)
    down: bool = False
    # The API's own Placement client: it claims at scheduling and drops at gone, as the API.
    placement: PlacementClient | None = None

    def register(
        self,
        host: str,
        provider_uuid: str,
        file_backed_memory_mb: int,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        self._check()
        self.registered.append(host)
        self.details.append(details)

    def watch(self, host: str, since: int | None, wait: float) -> tuple[int, list[DesiredInstance]]:
        self._check()
        return 1, list(self.desired.values())

    def report(self, uuid: str, fields: dict[str, Any]) -> None:
        self._check()
        self.reports.setdefault(uuid, []).append(fields)

    def report_memory_usage(self, host: str, guests: dict[str, dict[str, Any]]) -> None:
        self._check()
        self.usage.update(guests)

    def gone(self, uuid: str) -> None:
        self._check()
        if self.placement is not None:
            self.placement.delete_allocations(uuid)
        self.gone_uuids.append(uuid)
        self.desired.pop(uuid, None)

    def console(self, uuid: str, output: str, requested_at: str) -> None:
        self._check()
        self.consoles.setdefault(uuid, []).append((output, requested_at))

    def event(self, uuid: str, body: dict[str, Any]) -> None:
        self._check()
        self.events.setdefault(uuid, []).append(body)

    def migration_event(self, migration_uuid: str, body: dict[str, Any]) -> None:
        self._check()
        self.migration_events.setdefault(migration_uuid, []).append(body)

    def upload_image(self, image_id: str, path: Path) -> None:
        self._check()
        self.uploads[image_id] = path.read_bytes()

    def _check(self) -> None:
        if self.down:
            raise ApiUnavailable("the fake API is down")

    def last(self, uuid: str) -> dict[str, Any]:
        return self.reports[uuid][-1]


def building(flavor: Flavor = SMALL, **changes: Any) -> DesiredInstance:
    values: dict[str, Any] = {
        "uuid": str(uuidlib.uuid4()),
        "name": "vm",
        "vm_state": "building",
        "task_state": "spawning",
        "flavor": flavor,
        "image": IMAGE,
        "project_id": "p1",
        "user_id": "u1",
    }
    return DesiredInstance(**{**values, **changes})


@dataclass
class Agent:
    host: ComputeHost
    driver: FakeDriver
    api: FakeAgentApi
    loop: ReconcileLoop

    def allocations(self) -> dict[str, dict[str, int]]:
        return self.host.client.get_provider_allocations(self.host.tracker.provider_uuid)

    def schedule(self, want: DesiredInstance) -> None:
        """What the API does: claim the flavor on this host's provider, then hand it over."""
        assert self.api.placement is not None
        flavor = want.flavor
        resources = guest_resources(flavor.memory_mb, flavor.vcpus, flavor.disk_gb)
        provider = self.host.tracker.provider_uuid
        self.api.placement.claim(want.uuid, provider, resources, want.project_id, want.user_id)
        self.api.desired[want.uuid] = want

    def converge(self) -> None:
        self.loop.run_once(None)


@pytest.fixture
def agent(tmp_path: Path, embedded_placement: EmbeddedPlacement) -> Iterator[Agent]:
    state = tmp_path / "state"
    config = tmp_path / "filemem.conf"
    config.write_text(
        f"[DEFAULT]\nhost = fake-{uuidlib.uuid4().hex[:8]}\nstate_path = {state}\n"
        "ram_allocation_ratio = 1.0\n"
        f"[libvirt]\nvirt_type = qemu\nfile_backed_memory = {FILE_BACKED_MB}\n"
    )
    conf = filemem_conf.load(config_files=[str(config)])
    driver = FakeDriver(
        state_path=state, backing_dir=tmp_path / "ram", file_backed_memory_mb=FILE_BACKED_MB
    )
    host = ComputeHost.from_conf(conf, driver=driver, client=embedded_placement.client())
    host.tracker.sync()
    api = FakeAgentApi(placement=embedded_placement.client())
    yield Agent(host, driver, api, ReconcileLoop(host, api, wait=0))


def test_a_building_instance_is_spawned_claimed_and_reported_active(agent: Agent) -> None:
    want = building()
    agent.schedule(want)
    agent.converge()
    [guest] = agent.driver.list_guests()
    assert guest.uuid == want.uuid and guest.power_state == PowerState.RUNNING
    assert guest.memory_file is not None and guest.memory_file.nominal_bytes == 256 * 2**20
    assert agent.allocations()[want.uuid] == {MEMORY_MB: 256, VCPU: 1}
    assert agent.api.last(want.uuid)["vm_state"] == "active"
    # Level-triggered: a second pass over the same state changes nothing.
    calls = len([c for c in agent.driver.calls if c[0] == "spawn"])
    agent.converge()
    assert len([c for c in agent.driver.calls if c[0] == "spawn"]) == calls


def test_a_delete_destroys_the_guest_releases_its_claim_and_confirms_gone(agent: Agent) -> None:
    want = building()
    agent.schedule(want)
    agent.converge()
    agent.api.desired[want.uuid] = building(
        uuid=want.uuid, vm_state="active", task_state="deleting"
    )
    agent.converge()
    assert agent.driver.list_guests() == []
    assert want.uuid not in agent.allocations()
    assert agent.api.gone_uuids == [want.uuid]


def test_an_orphan_guest_nobody_wants_is_reaped(agent: Agent) -> None:
    want = building()
    agent.schedule(want)
    agent.converge()
    agent.api.desired.clear()  # the API lost it (row deleted while the agent was down)
    agent.converge()
    assert agent.driver.list_guests() == []
    # Nobody owns the allocation of a lost instance: the agent's heal drops it as drift.
    agent.host.manager.heal(keep=agent.loop.desired_uuids())
    assert want.uuid not in agent.allocations()


def test_huge_pages_on_a_file_backed_host_fail_cleanly_with_the_reason(agent: Agent) -> None:
    want = building(HUGE)
    agent.schedule(want)
    agent.converge()
    report = agent.api.last(want.uuid)
    assert report["vm_state"] == "error"
    assert "hw:mem_page_size" in report["fault_message"]
    assert agent.driver.list_guests() == []
    # The allocation is the API's: the ERROR instance keeps its host until it is deleted.
    assert agent.allocations()[want.uuid] == {MEMORY_MB: 256, VCPU: 1}


def test_a_guest_that_stops_by_itself_is_reported_not_restarted(agent: Agent) -> None:
    want = building()
    agent.api.desired[want.uuid] = want
    agent.converge()
    agent.api.desired[want.uuid] = building(uuid=want.uuid, vm_state="active", task_state=None)
    agent.driver.set_power(want.uuid, PowerState.SHUTDOWN)
    agent.converge()
    assert agent.api.last(want.uuid)["vm_state"] == "stopped"
    assert agent.driver.get_guest(want.uuid).power_state == PowerState.SHUTDOWN


def test_a_down_hypervisor_fails_the_pass_for_a_retry_and_touches_nothing(agent: Agent) -> None:
    want = building()
    agent.api.desired[want.uuid] = want
    agent.driver.unavailable = True
    with pytest.raises(HypervisorUnavailable):
        agent.converge()
    assert want.uuid not in agent.api.reports  # no ERROR for a transient failure
    agent.driver.unavailable = False
    agent.converge()
    assert agent.api.last(want.uuid)["vm_state"] == "active"


def test_the_loop_backs_off_while_the_api_is_down_and_converges_after(agent: Agent) -> None:
    want = building()
    agent.api.desired[want.uuid] = want
    agent.api.down = True
    waits: list[float] = []

    def wait(delay: float) -> bool:
        waits.append(delay)
        agent.api.down = len(waits) < 3  # the API comes back after three failed attempts
        return False

    def report(uuid: str, fields: dict[str, Any]) -> None:
        FakeAgentApi.report(agent.api, uuid, fields)
        agent.loop.stop.set()  # converged: end run() after this pass

    agent.loop.stop.wait = wait  # type: ignore[method-assign,assignment]
    agent.api.report = report  # type: ignore[method-assign]
    agent.loop.run()
    assert waits == [1.0, 2.0, 4.0]  # exponential backoff from retry_interval
    assert agent.api.last(want.uuid)["vm_state"] == "active"


def test_heal_claims_for_an_unclaimed_guest_and_drops_a_stale_claim(agent: Agent) -> None:
    uuid = str(uuidlib.uuid4())
    agent.driver.spawn("instance-x", uuid, SMALL, IMAGE)  # a guest with no allocation
    stale = str(uuidlib.uuid4())
    agent.host.client.claim(stale, agent.host.tracker.provider_uuid, {MEMORY_MB: 128}, "p", "u")
    kept = str(uuidlib.uuid4())
    agent.host.client.claim(kept, agent.host.tracker.provider_uuid, {MEMORY_MB: 64}, "p", "u")
    result = agent.host.manager.heal(keep=[kept])
    assert result.claimed == [uuid] and result.removed == [stale] and result.converged
    assert set(agent.allocations()) == {uuid, kept}


def test_resource_sync_reports_file_backed_capacity_and_the_trait(agent: Agent) -> None:
    loop = ResourceSyncLoop.from_conf(agent.host)
    first = loop.run_once()
    assert first.ok and first.sync is not None
    memory = first.sync.inventory.inventories[MEMORY_MB]
    assert memory["total"] == FILE_BACKED_MB and memory["allocation_ratio"] == 1.0
    assert MEMORY_BACKING_FILE_TRAIT in first.sync.traits
    second = loop.run_once()
    assert second.sync is not None and not second.sync.changed  # no change, no write
    assert agent.host.metrics_path().is_file()


def test_the_first_sync_is_followed_by_a_heartbeat_once_placement_holds_the_inventory(
    agent: Agent,
) -> None:
    """The API believes no store room beyond the provider's inventory in Placement, so the
    registration before the first sync carried none: the agent registers again right after
    it (else a new host could not take a live migration until its next heartbeat, 30 s)."""
    calls: list[int] = []

    def heartbeat() -> None:
        _, inventories = agent.host.client.get_inventories(agent.host.tracker.provider_uuid)
        calls.append(inventories[MEMORY_MB]["total"])
        if len(calls) == 1:
            raise ApiUnavailable("the API is restarting")

    loop = ResourceSyncLoop.from_conf(agent.host, after_first_sync=heartbeat)
    assert loop.run_once().ok and calls == [FILE_BACKED_MB]
    assert loop.run_once().ok and calls == [FILE_BACKED_MB] * 2  # failed: tried again
    assert loop.run_once().ok and len(calls) == 2  # once it went through, never again


def test_resource_sync_reports_each_guests_working_set_to_the_api(agent: Agent) -> None:
    want = building()
    agent.api.desired[want.uuid] = want
    agent.converge()
    loop = ResourceSyncLoop.from_conf(agent.host, report_usage=agent.loop.report_memory_usage)
    assert loop.run_once().ok
    usage = agent.api.usage[want.uuid]
    assert usage["nominal_bytes"] == 256 * 2**20
    # The fake's memory file is sparse: nothing on the store, nothing in the page cache.
    assert usage["store_bytes"] == 0 and usage["resident_bytes"] == 0
    assert loop.last_working_set is not None
    assert loop.last_working_set.store_only_bytes == 0


def test_a_new_host_gets_its_traits_before_its_inventory(
    tmp_path: Path, embedded_placement: EmbeddedPlacement, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider with capacity but not yet its trait would be chosen for a huge-page guest."""
    state = tmp_path / "state"
    config = tmp_path / "filemem.conf"
    config.write_text(
        f"[DEFAULT]\nhost = fresh-{uuidlib.uuid4().hex[:8]}\nstate_path = {state}\n"
        f"[libvirt]\nvirt_type = qemu\nfile_backed_memory = {FILE_BACKED_MB}\n"
    )
    conf = filemem_conf.load(config_files=[str(config)])
    driver = FakeDriver(
        state_path=state, backing_dir=tmp_path / "ram", file_backed_memory_mb=FILE_BACKED_MB
    )
    client = embedded_placement.client()
    writes: list[str] = []
    real_request = client.request

    def recording(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        if method == "PUT":
            writes.append(path.rsplit("/", 1)[-1])
        return real_request(method, path, *args, **kwargs)

    monkeypatch.setattr(client, "request", recording)
    ComputeHost.from_conf(conf, driver=driver, client=client).tracker.sync()
    assert writes == ["traits", "inventories"]


def test_a_config_drive_is_written_before_the_spawn_and_removed_if_it_fails(
    agent: Agent,
) -> None:
    want = building(config_drive=True, hostname="cd-vm")
    agent.schedule(want)
    agent.converge()
    assert agent.driver.config_drive_path(want.uuid).stat().st_size > 0
    # A spawn refused before any guest exists leaves no instance directory behind: the
    # deleted instance would get no destroy step to remove it.
    failing = building(config_drive=True)
    agent.driver.fail_next("spawn", InvalidGuestConfig("refused by the test"))
    agent.schedule(failing)
    agent.converge()
    assert agent.api.last(failing.uuid)["vm_state"] == "error"
    assert not agent.driver.instance_dir(failing.uuid).exists()
    assert agent.driver.config_drive_path(want.uuid).exists()  # the other guest keeps its own
