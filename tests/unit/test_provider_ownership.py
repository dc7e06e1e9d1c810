"""A host registers only its own resource provider, with no more capacity than Placement holds."""

from __future__ import annotations

import uuid as uuidlib
from pathlib import Path

import sqlalchemy as sa

from filemem.conductor.registration import PlacementMemory, provider_refusal, trusted_capacity
from filemem.db import api as db_api
from filemem.db import migrate
from tests.unit.api_app import Api

P = "11111111-2222-3333-4444-555555555555"


def test_a_provider_of_another_host_is_refused_naming_the_owner() -> None:
    refusal = provider_refusal("otherhost", P, "vm", None)
    assert refusal is not None
    assert f"Resource provider {P} belongs to host vm" in refusal
    assert "compute_node_uuid" in refusal and "cloned" in refusal


def test_a_provider_named_after_another_registered_host_is_refused() -> None:
    refusal = provider_refusal("b", P, None, "a", frozenset({"a", "b"}))
    assert refusal is not None and "belongs to host a" in refusal
    # Its own row or its own name; a name no registered host has (a test's, an old one's).
    assert provider_refusal("a", P, "a", "a", frozenset({"a"})) is None
    assert provider_refusal("b", P, None, "b", frozenset({"a"})) is None
    assert provider_refusal("b", P, None, "b-1234", frozenset({"a"})) is None
    assert provider_refusal("b", P, None, None, frozenset({"a"})) is None


def test_capacity_is_never_more_than_placement_holds() -> None:
    memory = PlacementMemory(total=4096, reserved=512, allocation_ratio=1.0, used=1024)
    assert memory.free == 2560
    assert trusted_capacity(10**6, 10**9, memory) == (4096, 2560)
    assert trusted_capacity(2048, 100, memory) == (2048, 100)
    assert trusted_capacity(4096, None, memory) == (4096, None)
    full = PlacementMemory(total=1024, reserved=0, allocation_ratio=1.0, used=2048)
    assert trusted_capacity(1024, 500, full) == (1024, 0)
    # Before the agent's first sync: no room is believed.
    assert trusted_capacity(8192, 8192, None) == (8192, None)


def _register(api: Api, host: str, provider: str, **extra: object) -> tuple[int, str]:
    body = {"provider_uuid": provider, "file_backed": True, "file_backed_memory_mb": 4096}
    response = api.call("PUT", f"/filemem/v1/services/{host}", json={**body, **extra})
    return response.status_code, response.text


def test_registering_another_hosts_provider_is_a_409(api: Api) -> None:
    provider = api.register_host("vm")
    status, text = _register(api, "otherhost", provider, store_free_mb=10**9)
    assert status == 409, text
    assert f"Resource provider {provider} belongs to host vm" in text
    with api.ctx.database.reader() as session:
        assert db_api.get_service_by_host(session, "otherhost") is None
        vm = db_api.get_service_by_host(session, "vm")
        assert vm is not None and vm.provider_uuid == provider
    # A registered host may not move onto it either.
    assert _register(api, "second", str(uuidlib.uuid4()))[0] == 200
    status, text = _register(api, "second", provider)
    assert status == 409 and "belongs to host vm" in text
    with api.ctx.database.reader() as session:
        second = db_api.get_service_by_host(session, "second")
        assert second is not None and second.provider_uuid != provider
    # Its own host keeps registering it.
    assert _register(api, "vm", provider)[0] == 200


def test_reported_capacity_is_capped_at_placements_inventory(api: Api) -> None:
    provider = api.register_host("capped", memory_mb=2048)
    status, text = _register(
        api, "capped", provider, file_backed_memory_mb=10**6, store_free_mb=10**9
    )
    assert status == 200, text
    with api.ctx.database.reader() as session:
        service = db_api.get_service_by_host(session, "capped")
        assert service is not None
        assert (service.file_backed_memory_mb, service.store_free_mb) == (2048, 2048)


def test_the_migration_keeps_a_shared_provider_on_its_first_host(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'filemem.sqlite'}"
    migrate.upgrade(url, "0009")
    engine = sa.create_engine(url)
    columns = "host, binary, disabled, forced_down, provider_uuid, file_backed, "
    columns += "file_backed_memory_mb, created_at"
    with engine.begin() as conn:
        for host in ("vm", "otherhost", "third"):
            conn.execute(
                sa.text(
                    f"INSERT INTO services ({columns}) VALUES "
                    "(:host, 'filemem-compute', 0, 0, :p, 1, 4096, '2026-12-01')"
                ),
                {"host": host, "p": P if host != "third" else None},
            )
    migrate.upgrade(url)
    with engine.begin() as conn:
        found = conn.execute(sa.text("SELECT host, provider_uuid FROM services")).all()
    rows: dict[str, str | None] = {str(host): uuid for host, uuid in found}
    assert rows == {"vm": P, "otherhost": None, "third": None}
    engine.dispose()
