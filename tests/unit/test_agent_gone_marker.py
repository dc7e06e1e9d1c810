"""The agent takes a 404 for "gone" only with the API's X-Filemem-Gone marker: a routing 404
(an API of another version, a wrong prefix) is retried, and the step is not recorded done."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from filemem.common import agent_wire
from filemem.compute.agent_api import AgentApiClient, ApiMisrouted, ApiUnavailable
from filemem.db import api as db_api
from filemem.placement.embedded import EmbeddedPlacement
from filemem.virt.fake import FakeDriver
from tests.agent_stack import IGNORE_TIMEOUT_WARNING, TOKEN, Stack, build_stack, close_stack

pytestmark = pytest.mark.filterwarnings(IGNORE_TIMEOUT_WARNING)


@pytest.fixture
def stack(tmp_path: Path, embedded_placement: EmbeddedPlacement) -> Iterator[Stack[FakeDriver]]:
    state = tmp_path / "state"
    driver = FakeDriver(state_path=state, backing_dir=tmp_path / "ram", file_backed_memory_mb=2048)
    image = {"name": "img", "kind": "kernel", "kernel_path": "/k1"}
    built = build_stack(tmp_path, state, driver, embedded_placement.client(), image)
    yield built
    close_stack(built)


class OlderPrefix(httpx.BaseTransport):
    """The app, but PATCH and POST go to a prefix it does not serve (version skew)."""

    def __init__(self, app: httpx.BaseTransport) -> None:
        self.app = app

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method in ("PATCH", "POST"):
            path = request.url.path.replace("/filemem/v1/", "/filemem/v0/", 1)
            request.url = request.url.copy_with(path=path)
        return self.app.handle_request(request)


def _agent_client(stack: Stack[FakeDriver]) -> AgentApiClient:
    api = stack.loop.api
    assert isinstance(api, AgentApiClient)
    return api


def test_a_routing_404_is_retried_and_the_step_is_not_done(stack: Stack[FakeDriver]) -> None:
    uuid = stack.boot()
    client = _agent_client(stack)
    right = client._http
    client._http = httpx.Client(
        base_url="http://api",
        headers={"X-Auth-Token": TOKEN},
        transport=OlderPrefix(stack.http._transport),
    )
    stack.act(uuid, "stop", task_state="powering-off")
    with pytest.raises(ApiMisrouted):
        stack.converge()
    row = stack.instance(uuid)
    # Not recorded: the API never took the report, so the task is still under way.
    assert (row.vm_state, row.task_state) == ("active", "powering-off")
    assert [e[1] for e in stack.events(uuid) if e[0] == "stop"] == []
    client._http.close()
    client._http = right
    stack.converge()  # the API is back: the pass converges
    row = stack.instance(uuid)
    assert (row.vm_state, row.task_state) == ("stopped", None)


def test_a_deleted_instance_still_counts_as_gone(stack: Stack[FakeDriver]) -> None:
    uuid = stack.boot()
    with stack.database.session() as session:
        assert db_api.delete_instance(session, uuid)
    answer = stack.http.patch(f"/filemem/v1/instances/{uuid}", json={"power_state": 1})
    assert answer.status_code == 404
    assert answer.headers[agent_wire.GONE_HEADER] == "instance"
    assert "itemNotFound" in answer.json()
    client = _agent_client(stack)
    client.report(uuid, {"power_state": 1})  # nothing left to report: no error
    now = "2026-12-03T10:00:00+00:00"
    event = {"event": "x", "result": "Success", "start_time": now, "finish_time": now}
    client.event(uuid, {**event, "traceback": None})
    client.console(uuid, "", "2026-12-03T10:00:00")
    client.migration_event(str(uuidlib.uuid4()), {"event": "progress"})
    client.gone(uuid)


def test_the_marker_is_the_agent_apis_only(stack: Stack[FakeDriver]) -> None:
    """A routing 404 and the Compute API's own 404 stay as nova answers them."""
    routing = stack.http.patch(f"/filemem/v0/instances/{uuidlib.uuid4()}", json={})
    assert routing.status_code == 404 and agent_wire.GONE_HEADER not in routing.headers
    server = stack.http.get(f"/v2.1/servers/{uuidlib.uuid4()}")
    assert server.status_code == 404 and agent_wire.GONE_HEADER not in server.headers


@pytest.mark.parametrize("method", ["PATCH", "POST", "PUT", "GET"])
def test_a_404_without_the_marker_is_never_gone(method: str) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"itemNotFound": {"message": "no route", "code": 404}})

    client = AgentApiClient("http://api", "t")
    client._http = client._clients[0] = httpx.Client(
        base_url="http://api", transport=httpx.MockTransport(answer)
    )
    with pytest.raises(ApiUnavailable, match="X-Filemem-Gone"):
        client._call(method, "/filemem/v1/instances/x", missing_ok=method == "PUT")
    client.close()


def test_is_gone_needs_404_and_a_known_kind() -> None:
    assert agent_wire.is_gone(404, {agent_wire.GONE_HEADER: "instance"})
    assert agent_wire.is_gone(404, {agent_wire.GONE_HEADER: "migration"})
    assert not agent_wire.is_gone(404, {})
    assert not agent_wire.is_gone(404, {agent_wire.GONE_HEADER: "route"})
    assert not agent_wire.is_gone(410, {agent_wire.GONE_HEADER: "instance"})
