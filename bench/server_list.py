"""Server list: GET /servers/detail?limit=100 at 1k/10k/100k instances, in Python vs in SQL."""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.testclient import TestClient
from sqlalchemy import insert, select

from bench._common import at_least, bench_parser, table
from filemem.api import ApiContext, create_app
from filemem.api.context import get_context
from filemem.api.errors import BadRequest
from filemem.api.handlers import paging, servers
from filemem.api.handlers import server_views as views
from filemem.conductor.hosts import host_source
from filemem.db import api as db_api
from filemem.db import migrate
from filemem.db.models import Instance, Service
from filemem.db.session import Database
from filemem.placement.embedded import EmbeddedPlacement
from filemem.scheduler import Scheduler

TOKEN = "bench-admin-token"
HOST = "bench-host"
BATCH = 10_000
EPOCH = dt.datetime(2026, 1, 1)

DESCRIPTION = """\
Server list: the time of GET /servers/detail?limit=N (an admin listing its own project, over
the in-process ASGI app on SQLite) with the listing done in Python (the implementation before
issue 19, kept below as `old_listing`) and in SQL (filemem.db.instance_list), side by side.

For each size the instances are bulk-inserted into a fresh database (migrated, so with the
keyset indexes), all in one project on one host. Two pages are asked for: the first, and the
page after a marker in the middle of the list. Each run asks old and new once, the order
alternated so machine noise hits both alike; the table shows medians and old/new.
"""


# -- the implementation before issue 19 (servers._filtered and _page, db_api.list_instances) --


def _old_list_instances(ctx: ApiContext) -> list[Instance]:
    with ctx.database.reader() as session:
        query = select(Instance).order_by(Instance.created_at.desc(), Instance.uuid.desc())
        return list(session.scalars(query))


def old_listing(
    request: Request,
    name: str | None,
    status: str | None,
    host: str | None,
    flavor: str | None,
    image: str | None,
    limit: int | None,
    marker: str | None,
    detail: bool = False,
) -> list[Instance]:
    """The old in-Python path for the bench's request (no filters but the project)."""
    project_id, _ = servers._project_scope(request, detail)
    instances = _old_list_instances(get_context(request))
    if project_id is not None:
        instances = [i for i in instances if i.project_id == project_id]
    if status is not None:
        instances = [i for i in instances if views.status(i) == status.upper()]
    if marker is not None:
        uuids = [instance.uuid for instance in instances]
        if marker not in uuids:
            raise BadRequest(f"marker [{marker}] not found")
        instances = instances[uuids.index(marker) + 1 :]
    return instances[: min(limit, paging.MAX_LIMIT) if limit is not None else paging.MAX_LIMIT]


# -- the runs ----------------------------------------------------------------------------


@dataclass
class Case:
    instances: int
    page: str
    old_s: list[float] = field(default_factory=list)
    new_s: list[float] = field(default_factory=list)


def _rows(ctx: ApiContext, start: int, count: int) -> list[dict[str, Any]]:
    return [
        {
            "uuid": str(uuidlib.uuid4()),
            "display_name": f"vm-{i}",
            "project_id": ctx.project_id,
            "user_id": ctx.user_id,
            "flavor_id": "bench",
            "flavor_name": "bench",
            "vcpus": 1,
            "memory_mb": 256,
            "root_gb": 0,
            "extra_specs": {},
            "image_id": str(uuidlib.UUID(int=0)),
            "metadata": {},
            "host": HOST,
            "vm_state": "active",
            "power_state": 1,
            "created_at": EPOCH + dt.timedelta(seconds=i),
            "updated_at": EPOCH + dt.timedelta(seconds=i),
        }
        for i in range(start, start + count)
    ]


def populate(ctx: ApiContext, count: int) -> str:
    """`count` instances in batches of BATCH; the uuid in the middle of the list."""
    with ctx.database.session() as session:
        session.add(Service(host=HOST, binary="filemem-compute", last_seen_at=EPOCH))
    for start in range(0, count, BATCH):
        with ctx.database.session() as session:
            session.execute(insert(Instance), _rows(ctx, start, min(BATCH, count - start)))
    with ctx.database.reader() as session:
        everything = db_api.list_instances(session)
    return everything[count // 2].uuid


@contextmanager
def api(
    scratch: Path, count: int, placement: EmbeddedPlacement
) -> Iterator[tuple[TestClient, str]]:
    """An API over a fresh database of `count` instances, and the uuid in the middle."""
    path = scratch / f"servers-{count}.sqlite"
    path.unlink(missing_ok=True)
    url = f"sqlite:///{path}"
    migrate.upgrade(url)
    database = Database(url)
    client = placement.client()
    scheduler = Scheduler(client, host_source(database, dt.timedelta(seconds=60)))
    ctx = ApiContext(database=database, placement=client, scheduler=scheduler, admin_token=TOKEN)
    try:
        with TestClient(create_app(ctx), headers={"X-Auth-Token": TOKEN}) as http:
            yield http, populate(ctx, count)
    finally:
        scheduler.close()
        database.dispose()
        path.unlink(missing_ok=True)


def timed(http: TestClient, params: dict[str, Any], expect: int) -> float:
    start = time.perf_counter()
    response = http.get("/v2.1/servers/detail", params=params)
    elapsed = time.perf_counter() - start
    if response.status_code != 200 or len(response.json()["servers"]) != expect:
        raise SystemExit(f"unexpected answer {response.status_code}: {response.text[:200]}")
    return elapsed


def measure(
    http: TestClient, case: Case, params: dict[str, Any], expect: int, args: argparse.Namespace
) -> None:
    new = servers._listing
    paths: list[tuple[str, Callable[..., list[Instance]]]] = [("old", old_listing), ("new", new)]
    for i in range(args.warmup + args.runs):
        for label, listing in paths if i % 2 == 0 else paths[::-1]:
            servers._listing = listing
            try:
                elapsed = timed(http, params, expect)
            finally:
                servers._listing = new
            if i >= args.warmup:
                (case.old_s if label == "old" else case.new_s).append(elapsed)


def report(cases: Sequence[Case]) -> None:
    rows = []
    for case in cases:
        old, new = statistics.median(case.old_s), statistics.median(case.new_s)
        rows.append(
            [
                f"{case.instances:,}",
                case.page,
                f"{old * 1000:.1f}",
                f"{new * 1000:.1f}",
                f"{old / new:.1f}x",
            ]
        )
    headers = ["instances", "page", "old p50 ms (Python)", "new p50 ms (SQL)", "old/new"]
    print(table(headers, rows))


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = bench_parser(
        "server_list",
        DESCRIPTION,
        runs=7,
        warmup=1,
        scratch=Path("/var/tmp/filemem-bench/server-list"),
    )

    def sizes(text: str) -> list[int]:
        return [at_least(1)(part) for part in text.split(",")]

    parser.add_argument(
        "--sizes",
        type=sizes,
        default=[1_000, 10_000, 100_000],
        metavar="N,N,...",
        help="instance counts (default 1000,10000,100000)",
    )
    parser.add_argument(
        "--limit", type=at_least(1), default=100, help="the page size asked for (default 100)"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    args.scratch.mkdir(parents=True, exist_ok=True)
    placement = EmbeddedPlacement(args.scratch / "placement")
    cases: list[Case] = []
    for count in args.sizes:
        with api(args.scratch, count, placement) as (http, middle):
            first = Case(count, "first")
            measure(http, first, {"limit": args.limit}, min(args.limit, count), args)
            after = Case(count, "after a mid-list marker")
            rest = count - count // 2 - 1
            params = {"limit": args.limit, "marker": middle}
            measure(http, after, params, min(args.limit, rest), args)
            cases += [first, after]
        print(f"# {count:,} instances measured", flush=True)
    report(cases)
    return 0


if __name__ == "__main__":
    sys.exit(main())
