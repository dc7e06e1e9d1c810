"""The executor's dispatch is exhaustive: a step kind it has no case for fails its step (an
Error event), it is never recorded done."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from filemem.compute.reconcile import executor
from filemem.compute.reconcile.plan import Step
from filemem.placement.embedded import EmbeddedPlacement
from filemem.virt.fake import FakeDriver
from tests.agent_stack import IGNORE_TIMEOUT_WARNING, Stack, build_stack, close_stack

pytestmark = pytest.mark.filterwarnings(IGNORE_TIMEOUT_WARNING)


@pytest.fixture
def stack(tmp_path: Path, embedded_placement: EmbeddedPlacement) -> Iterator[Stack[FakeDriver]]:
    state = tmp_path / "state"
    driver = FakeDriver(state_path=state, backing_dir=tmp_path / "ram", file_backed_memory_mb=2048)
    image = {"name": "img", "kind": "kernel", "kernel_path": "/k1"}
    built = build_stack(tmp_path, state, driver, embedded_placement.client(), image)
    yield built
    close_stack(built)


def test_an_unknown_step_kind_is_an_error_not_a_success(
    stack: Stack[FakeDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    uuid = stack.boot()
    # A kind no case handles (as a plan of a newer module would make): cast past the types.
    bogus: Any = "teleport"
    step = Step(bogus, uuid, report={"vm_state": "stopped"}, event="compute_teleport_instance")
    monkeypatch.setattr(executor, "plan", lambda *args: [step])

    result = stack.loop.executor.run_pass([])

    assert result.done == []
    assert "teleport" in result.failed[uuid]
    # Nothing of the step's report reached the API, and its event says it failed.
    assert stack.instance(uuid).vm_state == "active"
    assert stack.last_event(uuid)[1:3] == ("compute_teleport_instance", "Error")
