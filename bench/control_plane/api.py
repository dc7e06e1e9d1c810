"""The filemem-api under test: a seeded database and the API process in one mode."""

from __future__ import annotations

import contextlib
import os
import uuid as uuidlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench._common import REPO
from devtools import query_count
from devtools.services import ReadyLine, ServiceProcess, python_module
from filemem.db import api as db_api
from filemem.db import migrate
from filemem.db.session import Database

TOKEN = "bench-control-plane-" + "0123456789abcdef"
MODES = {
    "notify": "change_notifications = true\nlong_poll_recheck_interval = 5\n",
    "poll": "change_notifications = false\nlong_poll_recheck_interval = 0.25\n",
}


def seed(url: str, hosts: Sequence[str]) -> dict[str, str]:
    """Migrate; one active server row on each of `hosts` (written directly: no Placement or
    scheduling is measured here). Host -> server uuid."""
    migrate.upgrade(url)
    database = Database(url)
    servers = {}
    try:
        with database.session() as session:
            for host in hosts:
                servers[host] = db_api.create_instance(
                    session,
                    {
                        "uuid": str(uuidlib.uuid4()),
                        "display_name": f"vm-{host}",
                        "project_id": "bench",
                        "user_id": "bench",
                        "flavor_id": "1",
                        "flavor_name": "m1.tiny",
                        "vcpus": 1,
                        "memory_mb": 256,
                        "root_gb": 0,
                        "image_id": str(uuidlib.uuid4()),
                        "host": host,
                        "vm_state": "active",
                        "power_state": 1,
                    },
                ).uuid
    finally:
        database.dispose()
    return servers


@contextlib.contextmanager
def api_process(state: Path, url: str, mode: str) -> Iterator[tuple[ServiceProcess, Path]]:
    """filemem-api (embedded Placement) on loopback in `mode`; it and its query-count file."""
    state.mkdir(parents=True, exist_ok=True)
    conf = state / "filemem.conf"
    conf.write_text(
        f"[DEFAULT]\nstate_path = {state}\nhost = bench-api\n"
        f"[api]\nadmin_token = {TOKEN}\nbind_host = 127.0.0.1\nbind_port = 0\n{MODES[mode]}"
        f"[database]\nconnection = {url}\n"
    )
    counts = state / "queries"
    api = ServiceProcess(
        python_module("devtools.counted_api", "--config-file", str(conf)),
        log_path=state / "api-stderr.log",
        cwd=REPO,
        env={**os.environ, query_count.ENV: str(counts)},
        ready=ReadyLine(r"^filemem-api listening on (http://\S+)$"),
        start_timeout=120,
    )
    api.start()
    try:
        yield api, counts
    finally:
        api.stop()


@contextlib.contextmanager
def database_url(kind: str, state: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{state / 'api.sqlite'}"
        return
    # The tests' throwaway cluster (initdb + pg_ctl as postgres, loopback only).
    from tests.functional.postgres import PostgresCluster

    with PostgresCluster() as url:
        yield url
