"""An in-process filemem-api (TestClient) on SQLite and the session's embedded Placement."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from filemem.api.app import create_app
from filemem.api.context import ApiContext
from filemem.conductor.servers import SchedulerProtocol
from filemem.db import api as db_api
from filemem.db import migrate
from filemem.db.session import Database
from filemem.placement.client import PlacementClient
from filemem.placement.embedded import EmbeddedPlacement
from filemem.scheduler.manager import Selection
from filemem.scheduler.request import RequestSpec

TOKEN = "unit-test-token-0123456789abcdef"


class NoScheduler:
    """These tests boot nothing: the scheduler is only told that hosts changed."""

    def __init__(self) -> None:
        self.invalidations = 0

    def select_and_claim(self, spec: RequestSpec) -> Selection:
        raise AssertionError("no scheduling in these tests")

    def select_and_claim_many(self, specs: Sequence[RequestSpec]) -> list[Selection]:
        raise AssertionError("no scheduling in these tests")

    def invalidate_hosts(self) -> None:
        self.invalidations += 1

    def refusal_in_place(self, spec: RequestSpec, provider_uuid: str) -> str | None:
        raise AssertionError("no resizes in these tests")


@dataclass
class Api:
    client: TestClient
    ctx: ApiContext
    files: Path
    scheduler: NoScheduler

    def call(
        self, method: str, path: str, version: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if version is not None:
            headers["OpenStack-API-Version"] = f"compute {version}"
        response: httpx.Response = self.client.request(method, path, headers=headers, **kwargs)
        return response

    def compute(self, method: str, path: str, version: str | None = None, **kw: Any) -> Any:
        """A /v2.1 call that must succeed; its JSON body."""
        response = self.call(method, f"/v2.1{path}", version, **kw)
        assert response.status_code < 300, (response.status_code, response.text)
        return response.json() if response.content else None

    @property
    def placement(self) -> PlacementClient:
        return self.ctx.placement

    def register_host(self, host: str, memory_mb: int = 4096, vcpus: int = 4) -> str:
        """What an agent does: a provider with inventory, then its service row."""
        provider = str(uuidlib.uuid4())
        self.placement.ensure_resource_provider(provider, f"{host}-{provider[:8]}")
        self.placement.set_inventories(
            provider,
            {
                "MEMORY_MB": {"total": memory_mb, "max_unit": memory_mb},
                "VCPU": {"total": vcpus, "max_unit": vcpus},
            },
        )
        response = self.call(
            "PUT",
            f"/filemem/v1/services/{host}",
            json={
                "binary": "filemem-compute",
                "provider_uuid": provider,
                "file_backed": True,
                "file_backed_memory_mb": memory_mb,
            },
        )
        assert response.status_code == 200, response.text
        return provider

    def make_image(self, name: str, size: int = 64) -> str:
        kernel = self.files / f"{name}.vmlinuz"
        kernel.write_bytes(b"\0" * size)
        body = {"name": name, "kernel_path": str(kernel), "cmdline": "console=ttyS0"}
        response = self.call("POST", "/image/v2/images", json=body)
        assert response.status_code == 201, response.text
        image_id: str = response.json()["id"]
        return image_id

    def service_id(self, host: str) -> int:
        with self.ctx.database.reader() as session:
            service = db_api.get_service_by_host(session, host)
            assert service is not None
            return service.id


@pytest.fixture
def api(tmp_path: Path, embedded_placement: EmbeddedPlacement) -> Iterator[Api]:
    url = f"sqlite:///{tmp_path / 'filemem.sqlite'}"
    migrate.upgrade(url)
    database = Database(url)
    files = tmp_path / "files"
    files.mkdir()
    scheduler = NoScheduler()
    sched: SchedulerProtocol = scheduler
    ctx = ApiContext(
        database=database,
        placement=embedded_placement.client(),
        scheduler=sched,
        admin_token=TOKEN,
        image_dirs=(str(files),),
        image_store_dir=str(tmp_path / "image-store"),
    )
    with TestClient(create_app(ctx), headers={"X-Auth-Token": TOKEN}) as client:
        yield Api(client, ctx, files, scheduler)
    database.dispose()
