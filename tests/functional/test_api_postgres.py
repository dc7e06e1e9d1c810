"""filemem-api on a real PostgreSQL: migrations, and two API processes serving creates at once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from filemem.db import migrate
from filemem.db.models import Base
from filemem.db.session import make_engine
from tests.functional.api_fixtures import (
    ApiEnv,
    ApiProcess,
    agent_converge_deletes,
    api_conf,
    create_server,
    http_client,
    make_flavor,
    make_image,
    placement_client,
    register_host,
    show_server,
)
from tests.functional.placement_fixtures import StandalonePlacement
from tests.functional.postgres import PostgresCluster

CAPACITY = 5
CREATES = 12
FLAVOR_MB = 256


@dataclass
class TwoApis:
    database_url: str
    first: ApiEnv
    second: httpx.Client


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    with PostgresCluster() as url:
        yield url


@pytest.fixture(scope="module")
def apis(postgres: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoApis]:
    state = tmp_path_factory.mktemp("api-postgres")
    with StandalonePlacement(state / "placement") as placement_url:
        first = ApiProcess(state / "api-1", api_conf(state / "api-1", placement_url, postgres))
        synced = first.run("--db-sync-only")
        assert synced.returncode == 0, synced.stderr
        second = ApiProcess(state / "api-2", api_conf(state / "api-2", placement_url, postgres))
        try:
            first.start()
            second.start()
            files = state / "files"
            files.mkdir()
            with http_client(first.url) as http1, http_client(second.url) as http2:
                env = ApiEnv(
                    first.url, placement_url, http1, placement_client(placement_url), files, first
                )
                yield TwoApis(postgres, env, http2)
        finally:
            first.stop()
            second.stop()


def test_migrations_on_postgresql_match_the_models(apis: TwoApis) -> None:
    migrate.upgrade(apis.database_url)  # already at head: nothing to do
    assert migrate.current_revision(apis.database_url) == migrate.head_revision()
    engine = make_engine(apis.database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_create_list_delete_across_two_api_processes(apis: TwoApis) -> None:
    env = apis.first
    register_host(env, "pg-host-a", memory_mb=4096, vcpus=16)
    flavor = make_flavor(env, "pg.small", ram=FLAVOR_MB)
    image = make_image(env, "pg-image")

    server_id = create_server(env, "pg-vm", flavor, image, http=apis.second)
    assert show_server(env, server_id)["OS-EXT-SRV-ATTR:host"] == "pg-host-a"
    listed = apis.second.get("/v2.1/servers/detail", params={"name": "^pg-vm$"}).json()
    assert [s["id"] for s in listed["servers"]] == [server_id]

    assert apis.second.delete(f"/v2.1/servers/{server_id}").status_code == 204
    assert server_id in agent_converge_deletes(env, "pg-host-a")
    assert env.compute("GET", f"/servers/{server_id}").status_code == 404
    assert apis.second.get(f"/v2.1/servers/{server_id}").status_code == 404
    assert env.placement.get_allocations(server_id)[1] == {}


def test_two_apis_creating_at_once_never_overcommit(apis: TwoApis) -> None:
    env = apis.first
    provider = register_host(env, "pg-host-b", memory_mb=CAPACITY * FLAVOR_MB, vcpus=1024)
    # Only pg-host-b can take this flavor: pg-host-a has VCPU 16, this asks for 32.
    flavor = make_flavor(env, "pg.wide", ram=FLAVOR_MB, vcpus=32)
    # Placement, not the project's quota ([quota] cores = 20), is what this test races.
    unlimited = {"quota_set": {"instances": -1, "cores": -1, "ram": -1}}
    assert env.compute("PUT", "/os-quota-sets/filemem", json=unlimited).status_code == 200
    image = make_image(env, "pg-conc")
    ids: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(CREATES)

    def create(i: int) -> None:
        try:
            url = env.url if i % 2 else str(apis.second.base_url)
            with http_client(url) as http:
                barrier.wait()
                ids.append(create_server(env, f"pg-conc-{i}", flavor, image, http=http))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(CREATES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert not errors, errors
    servers = [show_server(env, server_id) for server_id in ids]
    scheduled = [s for s in servers if s["OS-EXT-SRV-ATTR:host"] == "pg-host-b"]
    assert len(scheduled) == CAPACITY, [(s["status"], s.get("fault")) for s in servers]
    assert sum(s["status"] == "ERROR" for s in servers) == CREATES - CAPACITY
    assert env.placement.get_usages(provider)["MEMORY_MB"] == CAPACITY * FLAVOR_MB
    assert set(env.placement.get_provider_allocations(provider)) == {s["id"] for s in scheduled}
