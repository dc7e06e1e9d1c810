"""The agent contract: the API's answers are the contract's models (validated, in the OpenAPI
document, read back into the agent's DesiredInstance), and both sides refuse another version.

The API side runs the real app in-process with the agent's own HTTP client (tests/agent_stack).
The header and status are spelt out here, not imported, so these tests say what the wire
carries."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ValidationError

from filemem.api.app import openapi_document
from filemem.api.handlers.server_views import agent_view
from filemem.common.agent_contract import answers, reports
from filemem.compute.agent_api import AgentApiClient, ContractMismatch, RegistrationRefused
from filemem.compute.reconcile.plan import DesiredInstance
from filemem.db import api as db_api
from filemem.placement.embedded import EmbeddedPlacement
from filemem.virt.fake import FakeDriver
from tests.agent_stack import IGNORE_TIMEOUT_WARNING, Stack, build_stack, close_stack

pytestmark = pytest.mark.filterwarnings(IGNORE_TIMEOUT_WARNING)
HEADER = "X-Filemem-Contract"


@pytest.fixture
def stack(tmp_path: Path, embedded_placement: EmbeddedPlacement) -> Iterator[Stack[FakeDriver]]:
    state = tmp_path / "state"
    driver = FakeDriver(state_path=state, backing_dir=tmp_path / "ram", file_backed_memory_mb=2048)
    image = {"name": "img", "kind": "kernel", "kernel_path": "/k1", "cmdline": "quiet"}
    built = build_stack(tmp_path, state, driver, embedded_placement.client(), image)
    yield built
    close_stack(built)


def _fields(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def test_the_watch_answer_is_the_contract_and_round_trips_into_the_plan(
    stack: Stack[FakeDriver],
) -> None:
    uuid = stack.boot()
    served = stack.http.get(f"/filemem/v1/hosts/{stack.hostname}/instances").json()
    # Every field of the models, and nothing else: the JSON is the contract, field for field.
    assert set(served) == _fields(answers.WatchAnswer)
    assert served["contract_version"] == 1
    [view] = served["instances"]
    assert set(view) == _fields(answers.AgentInstance)
    assert set(view["flavor"]) == _fields(answers.FlavorView)
    assert set(view["image"]) == _fields(answers.ImageView)
    # The API's view of the row serialises to exactly what the agent was served...
    with stack.database.reader() as session:
        row = db_api.get_instance(session, uuid)
        assert row is not None
        image = db_api.get_image(session, row.image_id)
        assert agent_view(row, image).model_dump(mode="json") == view
    # ...and reads back into the plan's DesiredInstance.
    want = DesiredInstance.from_api(view)
    assert (want.uuid, want.vm_state, want.task_state) == (uuid, "active", None)
    assert (want.flavor.name, want.flavor.vcpus, want.flavor.memory_mb) == ("small", 1, 256)
    assert (want.image.kind, str(want.image.kernel), want.image.cmdline) == (
        "kernel",
        "/k1",
        "quiet",
    )
    assert (want.project_id, want.user_id, want.migration_uuids) == ("p1", "u1", ())


def test_the_openapi_document_names_the_agent_answers() -> None:
    paths = openapi_document()["paths"]

    def answer_of(path: str, method: str) -> Any:
        content = paths[path][method]["responses"]["200"]["content"]["application/json"]
        return content["schema"].get("$ref")

    assert answer_of("/filemem/v1/hosts/{host}/instances", "get").endswith("/WatchAnswer")
    assert answer_of("/filemem/v1/services/{host}", "put").endswith("/RegistrationAnswer")
    assert answer_of("/filemem/v1/instances/{server_id}", "patch").endswith("/AgentInstance")
    memory = answer_of("/filemem/v1/hosts/{host}/memory-usage", "put")
    assert memory.endswith("/MemoryUsageAnswer")
    events = answer_of("/filemem/v1/migrations/{migration_uuid}/events", "post")
    assert events.endswith("/MigrationEventAnswer")


def test_the_api_refuses_an_agent_of_another_contract_version(stack: Stack[FakeDriver]) -> None:
    path = f"/filemem/v1/hosts/{stack.hostname}/instances"
    for spoken in ("2", "0", "one"):
        refused = stack.http.get(path, headers={HEADER: spoken})
        assert refused.status_code == 406, spoken
        message = refused.json()["notAcceptable"]["message"]
        assert HEADER in message and "version 1" in message
        assert refused.headers[HEADER] == "1"
    # Version 1 by name, or no header at all (an agent from before versioning): served.
    assert stack.http.get(path, headers={HEADER: "1"}).status_code == 200
    assert stack.http.get(path).status_code == 200


def _mock_client(handler: Any) -> AgentApiClient:
    client = AgentApiClient("http://api", "token")
    mock = httpx.Client(base_url="http://api", transport=httpx.MockTransport(handler))
    client._clients, client._http = [mock], mock
    return client


def test_the_agent_sends_its_version_and_refuses_an_api_of_another() -> None:
    seen: list[str | None] = []
    version = {"contract_version": 2}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get(HEADER))
        return httpx.Response(200, json={**version, "cursor": 1, "instances": []})

    client = _mock_client(handler)
    with pytest.raises(ContractMismatch) as info:
        client.watch("h1", None, 0)
    assert seen == ["1"]
    assert "version 2" in info.value.reason and "version 1" in info.value.reason
    # ContractMismatch is a refusal: the reconcile loop and filemem-compute stop on it.
    assert isinstance(info.value, RegistrationRefused)
    version = {}  # an API from before versioning speaks version 1
    assert client.watch("h1", None, 0) == (1, [])


def test_the_agent_stops_on_the_api_refusal_of_its_version() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"notAcceptable": {"message": "another version", "code": 406}}
        return httpx.Response(406, json=body, headers={HEADER: "3"})

    with pytest.raises(ContractMismatch) as info:
        _mock_client(handler).register("h1", str(uuidlib.uuid4()), 1024)
    assert "version 3" in info.value.reason


def test_answers_ignore_unknown_fields_reports_refuse_them() -> None:
    """The additive rule: a newer API's new field is skipped by an older agent; an agent's
    field the API does not know is refused, naming it."""
    view = {
        "uuid": "u",
        "name": "n",
        "vm_state": "active",
        "flavor": {"name": "f", "vcpus": 1, "memory_mb": 256, "nics": 2},
        "image": {"kind": "kernel", "kernel_path": "/k"},
        "config_drive": True,
    }
    assert DesiredInstance.from_api(view).flavor.memory_mb == 256
    with pytest.raises(ValidationError, match="config_drive"):
        reports.InstanceReport.model_validate({"vm_state": "active", "config_drive": True})


def test_a_mismatch_mid_pass_stops_the_agent_and_fails_no_instance(
    stack: Stack[FakeDriver], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API was upgraded under a running agent: its refusal of a report is not the step's
    failure (which would put the instance in ERROR) but the agent's stop."""
    uuid = stack.boot()
    stack.act(uuid, "stop", task_state="powering-off")
    client = stack.loop.api
    assert isinstance(client, AgentApiClient)
    reported: list[dict[str, Any]] = []

    def refused(uuid: str, fields: dict[str, Any]) -> None:
        reported.append(fields)
        raise ContractMismatch("the API speaks agent contract version 2", 406)

    monkeypatch.setattr(client, "report", refused)
    # Raised out of the pass: the reconcile loop stops on it (a RegistrationRefused).
    with pytest.raises(ContractMismatch):
        stack.loop.run_once(None)
    assert [r["vm_state"] for r in reported] == ["stopped"]  # no ERROR report after it
    assert stack.instance(uuid).vm_state == "active"
