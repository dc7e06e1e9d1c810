"""How Placement's failures reach a client, with the real embedded Placement behind a
transport that can fail one request: unreachable is 503, a conflict 409, no room nova's
"No valid host" (400, or a server in ERROR for a boot), and nothing else."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from filemem.api.errors import placement_status
from filemem.exceptions import PlacementError
from filemem.placement.client import (
    ConsumerGenerationConflict,
    GenerationConflict,
    InsufficientCapacity,
    PlacementApiError,
    PlacementConflict,
    PlacementUnavailable,
    Response,
    Transport,
)
from tests.unit import servers_app
from tests.unit.live_migration_app import active_server, migrate, two_hosts
from tests.unit.servers_app import ServersApp

app = servers_app.app


class Faulty:
    """Placement's transport, but the first request matching (method, path start) runs
    `before` first (a concurrent writer), or fails as if Placement had gone away."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.endpoint = inner.endpoint
        self.trap: tuple[str, str] | None = None
        self.before: Callable[[], None] | None = None

    def request(
        self, method: str, path: str, json_body: dict[str, Any] | None, headers: Mapping[str, str]
    ) -> Response:
        if self.trap is not None and method == self.trap[0] and path.startswith(self.trap[1]):
            self.trap = None
            if self.before is None:
                raise PlacementUnavailable(self.endpoint, "connection refused (test)")
            self.before()
        return self.inner.request(method, path, json_body, headers)


def faulty(app: ServersApp, method: str, path: str) -> Faulty:
    transport = Faulty(app.placement.transport)
    app.placement.transport = transport
    transport.trap = (method, path)
    return transport


def resize(app: ServersApp, uuid: str, ram: int) -> tuple[int, str]:
    app.ctx.allow_resize_to_same_host = True
    body = {"flavor": {"name": f"r{ram}", "ram": ram, "vcpus": 1, "disk": 0}}
    flavor = app.call("POST", "/flavors", json=body).json()["flavor"]["id"]
    answer = app.call("POST", f"/servers/{uuid}/action", json={"resize": {"flavorRef": flavor}})
    return answer.status_code, answer.text


def test_resize_when_placement_goes_away_is_503(app: ServersApp) -> None:
    uuid = active_server(app)
    before = app.placement.get_allocations(uuid)[1]
    faulty(app, "POST", "/allocations")
    status, text = resize(app, uuid, 512)
    assert status == 503, text
    assert "serviceUnavailable" in text and "No valid host" not in text
    assert app.placement.get_allocations(uuid)[1] == before
    server = app.show(uuid)
    assert (server["status"], server["OS-EXT-STS:task_state"]) == ("ACTIVE", None)


def test_resize_racing_another_writer_is_409(app: ServersApp) -> None:
    uuid = active_server(app)
    transport = faulty(app, "POST", "/allocations")
    generation, held = app.placement.get_allocations(uuid)
    server = app.show(uuid)

    def bump() -> None:  # another writer changes the consumer between read and write
        app.placement.put_allocations(
            uuid, held, server["tenant_id"], server["user_id"], generation
        )

    transport.before = bump
    status, text = resize(app, uuid, 512)
    assert status == 409, text
    assert "No valid host" not in text
    assert app.show(uuid)["status"] == "ACTIVE"


def test_resize_without_room_is_still_no_valid_host(app: ServersApp) -> None:
    uuid = active_server(app)
    status, text = resize(app, uuid, 4096)
    assert status == 400, text
    assert "No valid host was found" in text


def test_forced_live_migration_when_placement_goes_away_is_503(app: ServersApp) -> None:
    dest, _ = two_hosts(app)
    uuid = active_server(app)
    before = app.placement.get_allocations(uuid)[1]
    faulty(app, "POST", "/allocations")
    for version in ("2.30", "2.34"):  # below and from nova's async prechecks
        answer = migrate(app, uuid, version, host=dest, force=True)
        assert answer.status_code == 503, answer.text
        assert "No valid host" not in answer.text
        faulty(app, "POST", "/allocations")
    assert app.placement.get_allocations(uuid)[1] == before
    assert app.show(uuid)["status"] == "ACTIVE"


def test_boot_when_placement_goes_away_is_503_and_leaves_no_server(app: ServersApp) -> None:
    faulty(app, "PUT", "/allocations/")
    body = {"server": {"name": "vm", "flavorRef": app.flavor, "imageRef": app.image}}
    answer = app.call("POST", "/servers", json=body)
    assert answer.status_code == 503, answer.text
    assert app.call("GET", "/servers").json()["servers"] == []
    assert app.usage() == 0


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (PlacementUnavailable("http://placement", "refused"), 503),
        (PlacementApiError("GET", "/x", 503, "down", None), 503),
        (PlacementApiError("GET", "/x", 500, "boom", None), 503),
        (PlacementError("cannot authenticate to Placement", 401), 503),
        (PlacementError("no status"), 503),
        (PlacementConflict("PUT", "/x", 409, "conflict", "placement.foo"), 409),
        (GenerationConflict("PUT", "/x", 409, "gen", "placement.concurrent_update"), 409),
        (ConsumerGenerationConflict("PUT", "/x", 409, "c", "placement.concurrent_update"), 409),
        (InsufficientCapacity("PUT", "/x", 409, "Unable to allocate inventory", None), 409),
        (PlacementApiError("PUT", "/x", 400, "bad request", None), 500),
        (PlacementApiError("GET", "/x", 404, "no provider", None), 500),
    ],
)
def test_placement_status(error: PlacementError, status: int) -> None:
    assert placement_status(error) == status
