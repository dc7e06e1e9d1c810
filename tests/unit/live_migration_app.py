"""Helpers of the live migration API tests: a second host, a booted ACTIVE server, the agent
views and events as the agents would use them."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

import httpx

from filemem.common.resources import MEMORY_MB, VCPU
from filemem.db import api as db_api
from filemem.db import server_migrations as migrations_db
from tests.unit.servers_app import ServersApp

CAPABLE = {"file_backed_memory": True, "live_migration": True}


def register(
    app: ServersApp,
    host: str | None = None,
    provider: str | None = None,
    memory_mb: int = 1024,
    **fields: Any,
) -> tuple[str, str]:
    """An agent's registration with the contract's fields (capable, 4 GiB free by default)."""
    provider = provider or str(uuidlib.uuid4())
    host = host or f"unit-{provider[:8]}"
    app.placement.ensure_resource_provider(provider, host)
    app.placement.set_inventories(
        provider, {MEMORY_MB: {"total": memory_mb, "max_unit": memory_mb}, VCPU: {"total": 64}}
    )
    body = {
        "binary": "filemem-compute",
        "provider_uuid": provider,
        "file_backed": True,
        "file_backed_memory_mb": memory_mb,
        "capabilities": CAPABLE,
        "version": "0.1",
        "migration_address": f"{host}.example",
        "store_free_mb": 4096,
    }
    body.update(fields)
    response = app.client.put(f"/filemem/v1/services/{host}", json=body)
    assert response.status_code == 200, response.text
    return host, provider


def two_hosts(app: ServersApp, **dest_fields: Any) -> tuple[str, str]:
    """The fixture's host made capable, and a second host; (dest host, dest provider)."""
    register(app, app.host, app.provider)
    return register(app, **dest_fields)


def active_server(app: ServersApp) -> str:
    uuid = app.boot()
    app.set_state(uuid, "active")
    assert app.show(uuid)["OS-EXT-SRV-ATTR:host"] == app.host
    return uuid


def migrate(app: ServersApp, uuid: str, version: str = "2.30", **body: Any) -> httpx.Response:
    payload: dict[str, Any] = {"host": None, "block_migration": "auto"}
    if version < "2.25":
        payload = {"host": None, "block_migration": False, "disk_over_commit": False}
    payload.update(body)
    return app.call("POST", f"/servers/{uuid}/action", version, json={"os-migrateLive": payload})


def migration_of(app: ServersApp, uuid: str) -> Any:
    with app.ctx.database.reader() as session:
        rows = migrations_db.list_migrations(
            session, instance_uuid=uuid, migration_type=migrations_db.LIVE_MIGRATION
        )
        assert rows, f"no live migration of {uuid}"
        session.expunge(rows[0])
        return rows[0]


def event(app: ServersApp, migration_uuid: str, name: str, **body: Any) -> httpx.Response:
    response: httpx.Response = app.client.post(
        f"/filemem/v1/migrations/{migration_uuid}/events", json={"event": name, **body}
    )
    return response


def view_of(app: ServersApp, host: str, uuid: str) -> dict[str, Any] | None:
    response = app.client.get(f"/filemem/v1/hosts/{host}/instances")
    assert response.status_code == 200, response.text
    for view in response.json()["instances"]:
        if view["uuid"] == uuid:
            return dict(view)
    return None


def usage(app: ServersApp, provider: str) -> int:
    return int(app.placement.get_usages(provider).get(MEMORY_MB, 0))


def allocations(app: ServersApp, consumer: str) -> dict[str, int]:
    """{provider: MEMORY_MB} the consumer holds."""
    _, held = app.placement.get_allocations(consumer)
    return {rp: int(res.get(MEMORY_MB, 0)) for rp, res in held.items()}


def instance_host(app: ServersApp, uuid: str) -> tuple[str | None, str | None]:
    with app.ctx.database.reader() as session:
        instance = db_api.get_instance(session, uuid)
        assert instance is not None
        return instance.host, instance.task_state
