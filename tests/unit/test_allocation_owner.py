"""One owner per Placement consumer: the API claims, moves and drops an instance's allocation;
the agent only spawns and destroys, and its heal repairs drift, saying what and why.

The real API app and the agent's HTTP client in one process, FakeDriver, embedded Placement;
the API and the agent each have their own Placement client, so each one's writes are counted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from filemem.common.resources import MEMORY_MB, VCPU
from filemem.compute.resource_sync import ResourceSyncLoop
from filemem.placement.client import PlacementClient
from filemem.placement.embedded import EmbeddedPlacement
from filemem.virt.fake import FakeDriver
from tests.agent_stack import IGNORE_TIMEOUT_WARNING, Stack, build_stack, close_stack

pytestmark = pytest.mark.filterwarnings(IGNORE_TIMEOUT_WARNING)
FLAVOR = {MEMORY_MB: 256, VCPU: 1}


def _record(client: PlacementClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every request the client sends about one consumer's allocations (/allocations/...)."""
    sent: list[str] = []
    request = client.request

    def recording(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        if path.startswith("/allocations"):
            sent.append(f"{method} {path}")
        return request(method, path, *args, **kwargs)

    monkeypatch.setattr(client, "request", recording)
    return sent


@pytest.fixture
def stack(tmp_path: Path, embedded_placement: EmbeddedPlacement) -> Iterator[Stack[FakeDriver]]:
    state = tmp_path / "state"
    driver = FakeDriver(state_path=state, backing_dir=tmp_path / "ram", file_backed_memory_mb=2048)
    image = {"name": "img", "kind": "kernel", "kernel_path": "/k1"}
    built = build_stack(
        tmp_path,
        state,
        driver,
        embedded_placement.client(),
        image,
        api_placement=embedded_placement.client(),
    )
    yield built
    close_stack(built)


def _resource_loop(stack: Stack[FakeDriver]) -> ResourceSyncLoop:
    """The agent's resource loop, wired to the reconcile loop as filemem-compute wires it,
    after a pass that shows the agent its instances settled (their spawn reported)."""
    stack.converge()
    return ResourceSyncLoop.from_conf(
        stack.host,
        keep=stack.loop.desired_uuids,
        moving=stack.loop.migrating_uuids,
        placed=stack.loop.placed_allocations,
    )


def test_the_agent_never_writes_the_allocation_of_an_instance_the_api_scheduled(
    stack: Stack[FakeDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = _record(stack.host.client, monkeypatch)
    api = _record(stack.placement, monkeypatch)
    uuid = stack.boot()  # the scheduler's claim, then the agent's spawn
    assert stack.allocations()[uuid] == FLAVOR
    assert agent == []  # no claim of its own: not even a GET of the consumer
    assert _resource_loop(stack).run_once().ok
    assert agent == []  # heal finds nothing to repair

    api.clear()  # the scheduler's claim was the API's; now the deletion
    stack.act(uuid, "delete", task_state="deleting", deleted_requested=True)
    stack.converge()
    assert stack.driver.list_guests() == []
    assert uuid not in stack.allocations()
    assert agent == []  # the agent destroyed the guest; the API dropped the allocation
    assert api == [f"DELETE /allocations/{uuid}"]


def test_heal_claims_the_placed_flavor_for_an_allocation_removed_behind_filemems_back(
    stack: Stack[FakeDriver], caplog: pytest.LogCaptureFixture
) -> None:
    uuid = stack.boot()
    stack.placement.delete_allocations(uuid)  # an operator's `openstack resource provider ...`
    with caplog.at_level(logging.WARNING, logger="filemem.compute.manager"):
        cycle = _resource_loop(stack).run_once()
    assert cycle.heal is not None and cycle.heal.claimed == [uuid]
    assert stack.allocations()[uuid] == FLAVOR
    [line] = [r.getMessage() for r in caplog.records if uuid in r.getMessage()]
    assert "no allocation in Placement" in line and "removed outside filemem" in line
    assert str(FLAVOR) in line


def test_heal_reports_a_changed_allocation_then_repairs_it_when_it_persists(
    stack: Stack[FakeDriver], caplog: pytest.LogCaptureFixture
) -> None:
    uuid = stack.boot()
    provider = stack.host.tracker.provider_uuid
    changed = {MEMORY_MB: 64, VCPU: 1}
    stack.placement.claim(uuid, provider, changed, "p1", "u1")
    loop = _resource_loop(stack)
    with caplog.at_level(logging.WARNING, logger="filemem.compute.manager"):
        first = loop.run_once()
        # Seen once, only reported: the API may have moved it a moment ago (a resize).
        assert first.heal is not None and first.heal.drifted == [uuid]
        assert stack.allocations()[uuid] == changed
        second = loop.run_once()
    assert second.heal is not None and second.heal.repaired == [uuid]
    assert stack.allocations()[uuid] == FLAVOR
    lines = [r.getMessage() for r in caplog.records if uuid in r.getMessage()]
    assert len(lines) == 2
    assert "differs from" in lines[0] and str(changed) in lines[0]
    assert "repaired" in lines[1] and str(changed) in lines[1] and str(FLAVOR) in lines[1]
    assert "changed outside filemem" in lines[1]
    third = loop.run_once()
    assert third.heal is not None and not third.heal.repaired and not third.heal.drifted


def test_a_drift_that_goes_away_is_not_repaired(stack: Stack[FakeDriver]) -> None:
    uuid = stack.boot()
    provider = stack.host.tracker.provider_uuid
    loop = _resource_loop(stack)
    stack.placement.claim(uuid, provider, {MEMORY_MB: 64, VCPU: 1}, "p1", "u1")
    first = loop.run_once()
    assert first.heal is not None and first.heal.drifted == [uuid]
    stack.placement.claim(uuid, provider, FLAVOR, "p1", "u1")  # put right meanwhile
    second = loop.run_once()
    assert second.heal is not None and not second.heal.repaired and not second.heal.drifted


def test_a_failed_spawn_keeps_the_apis_allocation_until_the_instance_is_deleted(
    stack: Stack[FakeDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    agent = _record(stack.host.client, monkeypatch)
    stack.driver.capacity_mb = 128  # the guest does not fit: the spawn fails
    with pytest.raises(AssertionError):
        stack.boot()
    [uuid] = [u for u in stack.allocations()]
    assert stack.instance(uuid).vm_state == "error"
    assert agent == []
    assert _resource_loop(stack).run_once().ok
    assert stack.allocations()[uuid] == FLAVOR  # the ERROR instance still holds its host
