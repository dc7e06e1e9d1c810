"""An in-process filemem-api with the built-in network ([network] from a conf text), the real
embedded Placement and scheduler, a host, and the tenants' test callers."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from filemem import conf as filemem_conf
from filemem.api import ApiContext, create_app
from filemem.conductor.hosts import host_source
from filemem.conductor.network.builtin import driver_from_conf
from filemem.db import migrate
from filemem.db.session import Database
from filemem.placement.embedded import EmbeddedPlacement
from filemem.scheduler import Scheduler
from tests.unit.servers_app import TOKEN, _catalogue, register_host
from tests.unit.tenants_app import Tenants, authenticator

NETWORK_ID = "7b1d1a58-8c64-4e4f-9c1b-6f3b2f1e0a01"


class NetworkApp(Tenants):
    """Tenants' calls, plus the ones these tests repeat."""

    def create(self, who: str = "admin", version: str = "2.37", **server: Any) -> Any:
        """POST /servers; the response (any status)."""
        body = {"name": "vm", "flavorRef": self.flavor, "imageRef": self.image, **server}
        return self.call(who, "POST", "/servers", version, json={"server": body})

    def boot_on(self, networks: Any, who: str = "admin", **server: Any) -> str:
        response = self.create(who, networks=networks, **server)
        assert response.status_code == 202, response.text
        server_id: str = response.json()["server"]["id"]
        return server_id

    def server(self, server_id: str, who: str = "admin") -> dict[str, Any]:
        response = self.call(who, "GET", f"/servers/{server_id}", "2.37")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()["server"]
        return found


def network_app(
    tmp_path: Path, placement: EmbeddedPlacement, network: str = "", memory_mb: int = 1 << 20
) -> Iterator[NetworkApp]:
    """`network`: extra [network] option lines (the driver is builtin)."""
    conf_file = tmp_path / "filemem.conf"
    conf_file.write_text(f"[network]\ndriver = builtin\nnetwork_id = {NETWORK_ID}\n{network}")
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
        authenticators=(authenticator,),
        network=driver_from_conf(conf),
    )
    with TestClient(create_app(ctx), headers={"X-Auth-Token": TOKEN}) as client:
        host, _provider = register_host(client, client_placement, memory_mb)
        flavor, image = _catalogue(client, tmp_path)
        yield NetworkApp(client, ctx, flavor, image, host, client_placement)
    scheduler.close()
    database.dispose()
