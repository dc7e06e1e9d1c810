"""The agent plugs ports: NICs reach the driver at spawn, rebuild and resize, the network
driver is synced with the desired set (deletions left out), and unplugged at destroy."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from filemem.common.agent_contract.answers import NicView
from filemem.common.guests import Nic
from filemem.compute.network.base import (
    InstancePorts,
    NetworkDriver,
    NetworkError,
    NoNetwork,
    bridge_nics,
)
from filemem.compute.reconcile.plan import DesiredInstance, Step
from filemem.placement.embedded import EmbeddedPlacement
from filemem.virt.fake import FakeDriver
from tests.agent_stack import IGNORE_TIMEOUT_WARNING, Stack, build_stack, close_stack

pytestmark = pytest.mark.filterwarnings(IGNORE_TIMEOUT_WARNING)

NIC = NicView(
    port_id="3f1b2c4d-5e6f-4a8b-9c0d-112233445566",
    mac_address="fa:16:3e:00:00:0a",
    network_id="net",
    network_name="private",
    ip_address="10.98.0.10",
)
PLUGGED = Nic("fa:16:3e:00:00:0a", "fmbr-test", "tap3f1b2c4d-5e", 1450)


class RecordingNetwork(NetworkDriver):
    """Plugs onto bridge fmbr-test as the builtin driver would, and remembers what it served."""

    name = "recording"

    def __init__(self) -> None:
        self.served: dict[str, InstancePorts] = {}
        self.unplugged: list[str] = []
        self.broken = False

    def ensure_ready(self) -> None:
        if self.broken:
            raise NetworkError("bridge fmbr-test cannot be made")

    def plug(self, ports: InstancePorts) -> tuple[Nic, ...]:
        if not ports.nics:
            return ()
        self.ensure_ready()
        self.served[ports.uuid] = ports
        return bridge_nics(ports, "fmbr-test", 1450)

    def unplug(self, uuid: str) -> None:
        self.unplugged.append(uuid)
        self.served.pop(uuid, None)

    def sync(self, instances: Iterable[InstancePorts]) -> None:
        self.served = {i.uuid: i for i in instances if i.nics}
        if self.served:
            self.ensure_ready()


@pytest.fixture
def stack(tmp_path: Path, embedded_placement: EmbeddedPlacement) -> Iterator[Stack[FakeDriver]]:
    state = tmp_path / "state"
    driver = FakeDriver(state_path=state, backing_dir=tmp_path / "ram", file_backed_memory_mb=2048)
    image = {"name": "img", "kind": "kernel", "kernel_path": "/k1"}
    built = build_stack(tmp_path, state, driver, embedded_placement.client(), image)
    yield built
    close_stack(built)


def desired(stack: Stack[FakeDriver], uuid: str, **changes: object) -> DesiredInstance:
    """The API's agent view of the instance, with ports (the API side allocates them)."""
    _, wants = stack.loop.api.watch(stack.hostname, None, 0)
    want = next(w for w in wants if w.uuid == uuid)
    return dataclasses.replace(want, nics=(NIC,), hostname="vm-1", **changes)  # type: ignore[arg-type]


def building(stack: Stack[FakeDriver]) -> str:
    """An instance to spawn: booted without ports by the stack, its guest then gone again."""
    uuid = stack.boot()
    stack.driver.destroy(uuid)
    return uuid


def spawning(stack: Stack[FakeDriver], uuid: str) -> DesiredInstance:
    return desired(stack, uuid, vm_state="building", task_state="spawning")


def test_spawn_plugs_the_ports_and_passes_the_nics_to_the_driver(
    stack: Stack[FakeDriver],
) -> None:
    network = RecordingNetwork()
    stack.loop.executor.network = network
    uuid = building(stack)

    result = stack.loop.executor.run_pass([spawning(stack, uuid)])

    assert [s.kind for s in result.done] == ["spawn"]
    assert stack.driver.nics_of(uuid) == (PLUGGED,)
    assert network.served[uuid] == InstancePorts(uuid, "vm-1", (NIC,))


def test_rebuild_and_resize_keep_the_nics(stack: Stack[FakeDriver]) -> None:
    network = RecordingNetwork()
    stack.loop.executor.network = network
    uuid = stack.boot()
    stack.loop.executor.run_pass([desired(stack, uuid)])

    stack.driver.rebuild(uuid, stack.driver.flavor_of(uuid), stack.driver.image_of(uuid), True)
    assert stack.driver.nics_of(uuid) == ()  # the fake keeps what it was last given
    want = desired(stack, uuid, task_state="rebuilding")
    result = stack.loop.executor.run_pass([want])

    assert [s.kind for s in result.done] == ["rebuild"]
    assert stack.driver.nics_of(uuid) == (PLUGGED,)


def test_a_deleted_instance_is_unplugged_and_no_longer_served(stack: Stack[FakeDriver]) -> None:
    network = RecordingNetwork()
    stack.loop.executor.network = network
    uuid = stack.boot()
    stack.loop.executor.run_pass([desired(stack, uuid)])

    result = stack.loop.executor.run_pass([desired(stack, uuid, deleted_requested=True)])

    assert "destroy" in [s.kind for s in result.done]
    assert network.unplugged == [uuid]
    assert network.served == {}


def test_a_host_without_network_refuses_the_instance_with_a_fault(
    stack: Stack[FakeDriver],
) -> None:
    stack.loop.executor.network = NoNetwork()
    uuid = building(stack)

    result = stack.loop.executor.run_pass([spawning(stack, uuid)])

    assert "[network] driver = none" in result.failed[uuid]
    instance = stack.instance(uuid)
    assert instance.vm_state == "error"
    with pytest.raises(Exception, match="no guest"):
        stack.driver.get_guest(uuid)


def test_a_broken_network_fails_the_spawn_not_the_pass(stack: Stack[FakeDriver]) -> None:
    network = RecordingNetwork()
    stack.loop.executor.network = network
    uuid, other = building(stack), building(stack)
    network.broken = True
    without_nics = dataclasses.replace(spawning(stack, other), nics=())

    result = stack.loop.executor.run_pass([spawning(stack, uuid), without_nics])

    assert "cannot be made" in result.failed[uuid]
    assert [s.uuid for s in result.done if s.kind == "spawn"] == [other]


def test_the_destination_of_a_live_migration_plugs_before_it_prepares(
    stack: Stack[FakeDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    network = RecordingNetwork()
    executor = stack.loop.executor
    executor.network = network
    uuid = stack.boot()
    seen: list[bool] = []

    def prepare(want: DesiredInstance, migration_uuid: str, body: object) -> None:
        seen.append(want.uuid in network.served)  # the bridge and the address come first

    monkeypatch.setattr(executor.migrations, "prepare_incoming", prepare)
    mid = "0f0e0d0c-0b0a-4998-8776-655443322110"
    step = Step("prepare_incoming", uuid, instance=desired(stack, uuid), migration_uuid=mid)
    executor._perform(step)

    assert seen == [True]
    network.broken = True
    with pytest.raises(NetworkError):
        executor._perform(step)
    assert seen == [True]  # a host that cannot plug the guest never says it is prepared
