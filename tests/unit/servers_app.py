"""An in-process filemem-api (TestClient) on SQLite with the real embedded Placement and
scheduler, a registered host, a flavor and an image: what the server API unit tests drive."""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from filemem.api import ApiContext, create_app
from filemem.common.resources import MEMORY_MB, VCPU
from filemem.conductor.hosts import host_source
from filemem.db import api as db_api
from filemem.db import migrate
from filemem.db.session import Database
from filemem.placement.client import PlacementClient
from filemem.placement.embedded import EmbeddedPlacement
from filemem.scheduler import Scheduler

TOKEN = "unit-test-admin-token"


@dataclass
class ServersApp:
    client: TestClient
    ctx: ApiContext
    placement: PlacementClient
    host: str
    provider: str
    flavor: str
    image: str

    def call(
        self, method: str, path: str, version: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if version is not None:
            headers["OpenStack-API-Version"] = f"compute {version}"
        response: httpx.Response = self.client.request(
            method, f"/v2.1{path}", headers=headers, **kwargs
        )
        return response

    def boot(self, name: str = "vm", version: str | None = None, **extra: Any) -> str:
        body = {"server": {"name": name, "flavorRef": self.flavor, "imageRef": self.image}}
        body["server"].update(extra)
        response = self.call("POST", "/servers", version, json=body)
        assert response.status_code == 202, response.text
        server_id: str = response.json()["server"]["id"]
        return server_id

    def set_state(self, uuid: str, vm_state: str, task_state: str | None = None) -> None:
        """What the host's agent would report."""
        with self.ctx.database.session() as session:
            values = {"vm_state": vm_state, "task_state": task_state}
            assert db_api.update_instance(session, uuid, values, notify=False) is not None

    def show(self, uuid: str, version: str | None = None) -> dict[str, Any]:
        response = self.call("GET", f"/servers/{uuid}", version)
        assert response.status_code == 200, response.text
        server: dict[str, Any] = response.json()["server"]
        return server

    def usage(self) -> int:
        return self.placement.get_usages(self.provider).get(MEMORY_MB, 0)


def register_host(
    client: TestClient, placement: PlacementClient, memory_mb: int
) -> tuple[str, str]:
    """What an agent does: a provider with inventory in Placement, then its service."""
    provider = str(uuidlib.uuid4())
    host = f"unit-{provider[:8]}"
    placement.ensure_resource_provider(provider, host)
    placement.set_inventories(
        provider,
        {MEMORY_MB: {"total": memory_mb, "max_unit": memory_mb}, VCPU: {"total": 64}},
    )
    response = client.put(
        f"/filemem/v1/services/{host}",
        json={
            "binary": "filemem-compute",
            "provider_uuid": provider,
            "file_backed": True,
            "file_backed_memory_mb": memory_mb,
        },
    )
    assert response.status_code == 200, response.text
    return host, provider


def _catalogue(client: TestClient, files: Path) -> tuple[str, str]:
    name = f"f-{uuidlib.uuid4().hex[:8]}"
    flavor = client.post(
        "/v2.1/flavors", json={"flavor": {"name": name, "ram": 256, "vcpus": 1, "disk": 0}}
    )
    assert flavor.status_code == 200, flavor.text
    kernel = files / "vmlinuz"
    kernel.write_bytes(b"\0" * 64)
    image = client.post(
        "/image/v2/images", json={"name": "img", "kernel_path": str(kernel), "cmdline": ""}
    )
    assert image.status_code == 201, image.text
    return flavor.json()["flavor"]["id"], image.json()["id"]


@pytest.fixture
def app(embedded_placement: EmbeddedPlacement, tmp_path: Path) -> Iterator[ServersApp]:
    """A fresh database and host (1024 MiB: four 256 MiB servers) for each test."""
    url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    migrate.upgrade(url)
    database = Database(url)
    placement = embedded_placement.client()
    scheduler = Scheduler(placement, host_source(database, dt.timedelta(seconds=60)))
    ctx = ApiContext(
        database=database,
        placement=placement,
        scheduler=scheduler,
        admin_token=TOKEN,
        image_dirs=(str(tmp_path),),
    )
    with TestClient(create_app(ctx), headers={"X-Auth-Token": TOKEN}) as client:
        host, provider = register_host(client, placement, 1024)
        flavor, image = _catalogue(client, tmp_path)
        yield ServersApp(client, ctx, placement, host, provider, flavor, image)
    scheduler.close()
    database.dispose()
