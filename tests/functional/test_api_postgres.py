"""filemem-api on a real PostgreSQL: migrations, and two API processes serving creates and
resizes at once (Placement and the project's quota are never passed)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from filemem.db import migrate
from filemem.db import projects as db_projects
from filemem.db.models import Base
from filemem.db.session import make_engine
from tests.functional.api_fixtures import (
    ApiEnv,
    ApiProcess,
    agent_converge_deletes,
    agent_spawned,
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


RESIZABLE = "allow_resize_to_same_host = true\n"


@pytest.fixture(scope="module")
def apis(postgres: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoApis]:
    state = tmp_path_factory.mktemp("api-postgres")
    with StandalonePlacement(state / "placement") as placement_url:
        first_conf = api_conf(state / "api-1", placement_url, postgres, default=RESIZABLE)
        first = ApiProcess(state / "api-1", first_conf)
        synced = first.run("--db-sync-only")
        assert synced.returncode == 0, synced.stderr
        second_conf = api_conf(state / "api-2", placement_url, postgres, default=RESIZABLE)
        second = ApiProcess(state / "api-2", second_conf)
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


def test_the_quota_lock_holds_a_project_until_its_transaction_ends(postgres: str) -> None:
    engine = make_engine(postgres)
    try:
        with Session(engine) as holder, holder.begin():
            db_projects.lock_usage(holder, "project-x")
            with Session(engine) as waiter, waiter.begin():
                waiter.execute(text("SET LOCAL lock_timeout = '300ms'"))
                db_projects.lock_usage(waiter, "project-y")  # another project: no wait
                with pytest.raises(OperationalError, match="lock timeout"):
                    db_projects.lock_usage(waiter, "project-x")
        with Session(engine) as waiter, waiter.begin():
            waiter.execute(text("SET LOCAL lock_timeout = '300ms'"))
            db_projects.lock_usage(waiter, "project-x")  # the holder committed
    finally:
        engine.dispose()


def test_two_apis_resizing_at_once_never_pass_the_cores_quota(apis: TwoApis) -> None:
    """Each resize alone fits the project's cores quota, both together do not: one API
    process resizes, the other answers nova's 403."""
    env = apis.first
    register_host(env, "pg-host-r", memory_mb=4096, vcpus=64)
    small = make_flavor(env, "pg.r1", ram=64, vcpus=1)
    wide = make_flavor(env, "pg.r3", ram=64, vcpus=3)
    image = make_image(env, "pg-resize")
    servers = [create_server(env, f"pg-resize-{i}", small, image) for i in range(2)]
    for server_id in servers:
        agent_spawned(env, server_id)
    used = env.compute("GET", "/limits").json()["limits"]["absolute"]["totalCoresUsed"]
    quota = {"quota_set": {"instances": -1, "cores": used + 2, "ram": -1}}
    assert env.compute("PUT", "/os-quota-sets/filemem", json=quota).status_code == 200
    codes: list[int] = []
    barrier = threading.Barrier(len(servers))

    def resize(i: int) -> None:
        url = env.url if i % 2 else str(apis.second.base_url)
        with http_client(url) as http:
            barrier.wait()
            body = {"resize": {"flavorRef": wide}}
            codes.append(http.post(f"/v2.1/servers/{servers[i]}/action", json=body).status_code)

    threads = [threading.Thread(target=resize, args=(i,)) for i in range(len(servers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    try:
        assert sorted(codes) == [202, 403]
        limits = env.compute("GET", "/limits").json()["limits"]["absolute"]
        assert limits["totalCoresUsed"] == used + 2 <= limits["maxTotalCores"]
        held = [env.placement.get_allocations(s)[1] for s in servers]
        assert sorted(sum(r["VCPU"] for r in h.values()) for h in held) == [1, 3]
    finally:
        unlimited = {"quota_set": {"instances": -1, "cores": -1, "ram": -1}}
        assert env.compute("PUT", "/os-quota-sets/filemem", json=unlimited).status_code == 200


def test_the_servers_list_pages_in_sql_on_postgresql(apis: TwoApis) -> None:
    """Created by one API, paged by the other: a name prefix (a LIKE pre-filter), keyset pages
    after the marker and a next link on every full page, the last one too."""
    env = apis.first
    flavor = make_flavor(env, "pg.list", ram=FLAVOR_MB)
    image = make_image(env, "pg-list-image")
    created = [create_server(env, f"pg-list-{i}", flavor, image) for i in range(3)]
    seen: list[str] = []
    params: dict[str, str | int] = {"name": "^pg-list-", "limit": 1}
    while True:
        body = apis.second.get("/v2.1/servers/detail", params=params).json()
        seen += [server["id"] for server in body["servers"]]
        if not body["servers"]:
            assert "servers_links" not in body
            break
        (link,) = body["servers_links"]
        assert f"marker={seen[-1]}" in link["href"] and "/v2.1/servers/detail?" in link["href"]
        params["marker"] = seen[-1]
    assert seen == created[::-1]
    missing = apis.second.get("/v2.1/servers", params={"name": "^other", "marker": created[0]})
    assert missing.status_code == 400
    assert missing.json()["badRequest"]["message"] == f"marker [{created[0]}] not found"
