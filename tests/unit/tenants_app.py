"""An in-process filemem-api whose callers are an admin, members and a reader of two projects
(a test authenticator: token -> Caller), with the real embedded Placement and scheduler."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from filemem import conf as filemem_conf
from filemem.api import ApiContext, create_app
from filemem.api.identity import Caller
from filemem.conductor.hosts import host_source
from filemem.db import migrate
from filemem.db.session import Database
from filemem.placement.client import PlacementClient
from filemem.placement.embedded import EmbeddedPlacement
from filemem.scheduler import Scheduler
from tests.unit.servers_app import TOKEN, _catalogue, register_host

PROJECT_A, PROJECT_B = "project-a", "project-b"
CALLERS = {
    "member_a": Caller("user-a", PROJECT_A, frozenset({"member", "reader"}), kind="keystone"),
    "member_a2": Caller("user-a2", PROJECT_A, frozenset({"member", "reader"}), kind="keystone"),
    "member_b": Caller("user-b", PROJECT_B, frozenset({"member", "reader"}), kind="keystone"),
    "reader_a": Caller("reader-a", PROJECT_A, frozenset({"reader"}), kind="keystone"),
    "manager_a": Caller(
        "manager-a", PROJECT_A, frozenset({"manager", "member", "reader"}), kind="keystone"
    ),
}
TOKENS = {f"token-{name}": caller for name, caller in CALLERS.items()}


def authenticator(token: str) -> Caller | None:
    """The test's identity service: a fixed token per caller."""
    return TOKENS.get(token)


def token_of(who: str) -> str:
    return TOKEN if who == "admin" else f"token-{who}"


@dataclass
class Tenants:
    client: TestClient
    ctx: ApiContext
    flavor: str
    image: str
    host: str
    placement: PlacementClient

    def call(
        self, who: str, method: str, path: str, version: str | None = None, **kwargs: Any
    ) -> httpx.Response:
        headers = {"X-Auth-Token": token_of(who), **kwargs.pop("headers", {})}
        if version is not None:
            headers["OpenStack-API-Version"] = f"compute {version}"
        raw = path.startswith(("/filemem", "/image", "/placement", "/identity", "/network"))
        url = path if raw else f"/v2.1{path}"
        response: httpx.Response = self.client.request(method, url, headers=headers, **kwargs)
        return response

    def flavor_of(self, name: str, vcpus: int = 1, ram: int = 256, public: bool = True) -> str:
        body = {"flavor": {"name": name, "ram": ram, "vcpus": vcpus, "disk": 0}}
        body["flavor"]["os-flavor-access:is_public"] = public
        response = self.call("admin", "POST", "/flavors", json=body)
        assert response.status_code == 200, response.text
        flavor_id: str = response.json()["flavor"]["id"]
        return flavor_id

    def boot(self, who: str, name: str = "vm", flavor: str | None = None, **extra: Any) -> str:
        body = {
            "server": {"name": name, "flavorRef": flavor or self.flavor, "imageRef": self.image}
        }
        body["server"].update(extra)
        response = self.call(who, "POST", "/servers", json=body)
        assert response.status_code == 202, response.text
        server_id: str = response.json()["server"]["id"]
        return server_id


def tenants_app(
    tmp_path: Path, placement: EmbeddedPlacement, conf_text: str = "", memory_mb: int = 1 << 20
) -> Iterator[Tenants]:
    """The app; `conf_text` is a filemem.conf ([quota], [oslo_policy] policy_file, ...)."""
    conf_file = tmp_path / "filemem.conf"
    conf_file.write_text(conf_text)
    conf = filemem_conf.load(config_files=[str(conf_file)])
    url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    migrate.upgrade(url)
    database = Database(url)
    client_placement = placement.client()
    scheduler = Scheduler(client_placement, host_source(database, dt.timedelta(seconds=60)))
    ctx = ApiContext(
        database=database,
        placement=client_placement,
        scheduler=scheduler,
        admin_token=TOKEN,
        conf=conf,
        image_dirs=(str(tmp_path),),
        image_store_dir=str(tmp_path / "image-store"),
        authenticators=(authenticator,),
        allow_resize_to_same_host=True,
    )
    with TestClient(create_app(ctx), headers={"X-Auth-Token": TOKEN}) as client:
        host, _provider = register_host(client, client_placement, memory_mb)
        flavor, image = _catalogue(client, tmp_path)
        yield Tenants(client, ctx, flavor, image, host, client_placement)
    scheduler.close()
    database.dispose()


@pytest.fixture
def tenants(embedded_placement: EmbeddedPlacement, tmp_path: Path) -> Iterator[Tenants]:
    yield from tenants_app(tmp_path, embedded_placement)


@pytest.fixture(scope="module")
def tenants_module(
    embedded_placement: EmbeddedPlacement, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Tenants]:
    """One app for a module whose tests change nothing another test reads."""
    yield from tenants_app(tmp_path_factory.mktemp("tenants"), embedded_placement)
