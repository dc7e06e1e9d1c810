"""Scheduling at scale: the host-state cache vs Placement's allocation candidates, same run.

Registers N hosts (inventories only: MEMORY_MB 65536, VCPU 64, DISK_GB 1000; every 4th with
COMPUTE_MEM_BACKING_FILE) straight into the database of a real standalone Placement
(`python -m filemem.cmd.placement`, SQLite on tmpfs), then times select + claim over HTTP for
Scheduler(strategy="cache") and Scheduler(strategy="placement") interleaved, one request
after the other, every 5th asking for huge pages. Afterwards every provider touched is read
back (GET /resource_providers/{u}/usages): usage must not exceed capacity, must equal what
was claimed, and no huge-page guest may sit on a file-backed host.

    .venv/bin/python -m bench.scheduling.scale [--hosts 1000,10000] [--claims 200]

--placement fast (or both) runs Placement with its JSON-schema validators built once instead
of on every request (a patch applied inside the Placement process only): stock Placement 16
re-checks each schema on every request, ~10 ms of every PUT /allocations here.
Figures of a full run and the decision they led to: filemem/scheduler/selector.py.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid as uuidlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench._common import at_least, bench_parser, standalone_placement, table
from devtools.services import python_module
from filemem.common.resources import MEM_PAGE_SIZE, MEMORY_BACKING_FILE_TRAIT
from filemem.placement.client import PlacementClient, Response, Transport
from filemem.placement.http import HttpTransport
from filemem.scheduler import HostRecord, RequestSpec, Scheduler, SchedulerSettings, Selection

INVENTORY = {"MEMORY_MB": 65536, "VCPU": 64, "DISK_GB": 1000}
PROJECT, USER = "bench-project", "bench-user"
HUGE_PAGES_EVERY = 5
LOST_RACES = 5
BARE_PUT_HOSTS = 40


# -- Placement ------------------------------------------------------------------------------


def _serve_fast_schema(argv: Sequence[str]) -> int:
    """Placement with jsonschema.validate() reusing one validator per schema (this process)."""
    import jsonschema  # type: ignore[import-untyped]

    validators: dict[int, tuple[object, Any]] = {}

    def validate(instance: object, schema: Any, cls: Any = None, *args: Any, **kw: Any) -> None:
        cached = validators.get(id(schema))
        if cached is None or cached[0] is not schema:
            validator_cls = cls or jsonschema.validators.validator_for(schema)
            validator_cls.check_schema(schema)  # once, instead of on every request
            cached = (schema, validator_cls(schema, *args, **kw))
            validators[id(schema)] = cached
        error = jsonschema.exceptions.best_match(cached[1].iter_errors(instance))
        if error is not None:
            raise error

    jsonschema.validate = validate
    from filemem.cmd import placement

    return placement.main(list(argv))


def placement_server(state: Path, fast_schema: bool) -> contextlib.AbstractContextManager[str]:
    """A standalone Placement on 127.0.0.1 (free port, SQLite in state); stopped on exit."""
    serve = python_module("bench.scheduling.scale", "--serve-placement") if fast_schema else None
    return standalone_placement(state, ["--state-path", str(state)], serve)


class TimedTransport:
    """Adds up the time spent waiting for Placement, so the scheduler's own share shows."""

    def __init__(self, inner: Transport) -> None:
        self._inner = inner
        self.endpoint = inner.endpoint
        self.seconds = 0.0

    def request(
        self, method: str, path: str, json_body: dict[str, Any] | None, headers: Mapping[str, str]
    ) -> Response:
        started = time.perf_counter()
        try:
            return self._inner.request(method, path, json_body, headers)
        finally:
            self.seconds += time.perf_counter() - started


@dataclass(frozen=True)
class Host:
    name: str
    uuid: str
    file_backed: bool


def register_hosts(db_path: Path, count: int, file_backed_every: int) -> list[Host]:
    """Insert providers, inventories and traits straight into Placement's tables (fast).

    Placement must have started once on this database: its trait and resource class tables
    are filled at start-up, and their ids are read back here rather than assumed.
    """
    hosts = [
        Host(f"host-{i:05d}", str(uuidlib.uuid4()), i % file_backed_every == 0)
        for i in range(count)
    ]
    with contextlib.closing(sqlite3.connect(db_path, timeout=60)) as db, db:
        (trait_id,) = db.execute(
            "SELECT id FROM traits WHERE name = ?", (MEMORY_BACKING_FILE_TRAIT,)
        ).fetchone()
        rc_ids = dict(db.execute("SELECT name, id FROM resource_classes").fetchall())
        (base,) = db.execute("SELECT COALESCE(MAX(id), 0) FROM resource_providers").fetchone()
        ids = range(base + 1, base + 1 + count)
        db.executemany(
            "INSERT INTO resource_providers (id, uuid, name, generation, root_provider_id, "
            "created_at) VALUES (?, ?, ?, 1, ?, datetime('now'))",
            [(rp_id, h.uuid, h.name, rp_id) for rp_id, h in zip(ids, hosts, strict=True)],
        )
        db.executemany(
            "INSERT INTO inventories (resource_provider_id, resource_class_id, total, reserved, "
            "min_unit, max_unit, step_size, allocation_ratio, created_at) "
            "VALUES (?, ?, ?, 0, 1, ?, 1, 1.0, datetime('now'))",
            [(rp_id, rc_ids[rc], total, total) for rp_id in ids for rc, total in INVENTORY.items()],
        )
        db.executemany(
            "INSERT INTO resource_provider_traits (resource_provider_id, trait_id, created_at) "
            "VALUES (?, ?, datetime('now'))",
            [(rp_id, trait_id) for rp_id, h in zip(ids, hosts, strict=True) if h.file_backed],
        )
    return hosts


# -- measuring ------------------------------------------------------------------------------


@dataclass
class Series:
    label: str
    totals: list[float] = field(default_factory=list)
    placement: list[float] = field(default_factory=list)
    claims: dict[str, tuple[str, RequestSpec]] = field(default_factory=dict)

    def row(self, hosts: int, extra: str) -> list[str]:
        if not self.totals:
            return [f"{hosts:,}", self.label, "0", "-", "-", "-", "-", extra]
        ms = sorted(t * 1000 for t in self.totals)
        p95 = ms[min(len(ms) - 1, round(0.95 * (len(ms) - 1)))]
        own = statistics.median(
            (t - p) * 1000 for t, p in zip(self.totals, self.placement, strict=True)
        )
        return [
            f"{hosts:,}",
            self.label,
            str(len(ms)),
            f"{statistics.median(ms):.1f}",
            f"{p95:.1f}",
            f"{ms[-1]:.1f}",
            f"{own:.1f}",
            extra,
        ]


def spec_for(i: int) -> RequestSpec:
    extra = {MEM_PAGE_SIZE: "large"} if i % HUGE_PAGES_EVERY == 0 else {}
    return RequestSpec(
        str(uuidlib.uuid4()), PROJECT, USER, memory_mb=4096, vcpus=2, disk_gb=20, extra_specs=extra
    )


class Claimer(Protocol):
    def select_and_claim(self, spec: RequestSpec) -> Selection: ...


def timed_claim(scheduler: Claimer, timer: TimedTransport, series: Series, i: int) -> None:
    spec = spec_for(i)
    before, started = timer.seconds, time.perf_counter()
    selection: Selection = scheduler.select_and_claim(spec)
    series.totals.append(time.perf_counter() - started)
    series.placement.append(timer.seconds - before)
    series.claims[spec.instance_uuid] = (selection.provider_uuid, spec)


def lose_races(
    scheduler: Scheduler,
    client: PlacementClient,
    timer: TimedTransport,
    series: Series,
    fillers: dict[str, int],
) -> None:
    """Fill the cache's favourite host behind its back, then time the claim that loses there."""
    for i in range(LOST_RACES):
        favourite = scheduler.cache.inspect(lambda order: order[0].provider_uuid)
        free = INVENTORY["MEMORY_MB"] - client.get_usages(favourite).get("MEMORY_MB", 0)
        client.claim(str(uuidlib.uuid4()), favourite, {"MEMORY_MB": free}, PROJECT, USER)
        fillers[favourite] = fillers.get(favourite, 0) + free
        timed_claim(scheduler, timer, series, i * HUGE_PAGES_EVERY + 1)
        assert series.claims[list(series.claims)[-1]][0] != favourite


def check_no_overcommit(
    client: PlacementClient,
    hosts: Sequence[Host],
    claimed: Sequence[Series],
    fillers: Mapping[str, int],
) -> str:
    """Every touched provider: usage ≤ capacity, usage == claims; huge pages off file hosts."""
    by_uuid = {h.uuid: h for h in hosts}
    expected: dict[str, dict[str, int]] = {}
    for series in claimed:
        for rp, spec in series.claims.values():
            if MEM_PAGE_SIZE in spec.extra_specs and by_uuid[rp].file_backed:
                raise AssertionError(f"huge-page guest {spec.instance_uuid} on file-backed {rp}")
            want = expected.setdefault(rp, {})
            for rc, n in (
                ("MEMORY_MB", spec.memory_mb),
                ("VCPU", spec.vcpus),
                ("DISK_GB", spec.disk_gb),
            ):
                want[rc] = want.get(rc, 0) + n
    for rp, memory in fillers.items():
        want = expected.setdefault(rp, {})
        want["MEMORY_MB"] = want.get("MEMORY_MB", 0) + memory
    for rp, want in expected.items():
        usage = client.get_usages(rp)
        for rc, total in INVENTORY.items():
            if usage.get(rc, 0) > total:
                raise AssertionError(f"over-commit on {rp}: {rc} {usage[rc]} > {total}")
            if usage.get(rc, 0) != want.get(rc, 0):
                raise AssertionError(f"{rp}: {rc} used {usage.get(rc)} != claimed {want}")
    return f"{len(expected)} providers checked, none over-committed"


@dataclass
class Run:
    hosts: int
    claims: int
    baseline_claims: int
    file_backed_every: int
    fast_schema: bool
    scratch: Path


def measure(run: Run) -> tuple[list[list[str]], str]:
    state = Path(tempfile.mkdtemp(prefix="sched-bench-", dir=run.scratch))
    try:
        with placement_server(state, run.fast_schema) as url:
            return measure_on(run, url, state / "placement.sqlite")
    finally:
        shutil.rmtree(state, ignore_errors=True)


def measure_on(run: Run, url: str, db_path: Path) -> tuple[list[list[str]], str]:
    timer = TimedTransport(HttpTransport.with_token(url, "admin"))
    client = PlacementClient(timer)
    client.request("GET", f"/traits?name=in:{MEMORY_BACKING_FILE_TRAIT}")  # Placement is ready
    started = time.perf_counter()
    hosts = register_hosts(db_path, run.hosts, run.file_backed_every)
    print(f"# {run.hosts:,} hosts registered in {time.perf_counter() - started:.1f} s")
    # The last few hosts take the bare PUTs, out of the schedulers' sight.
    records = [HostRecord(h.name, h.uuid) for h in hosts[:-BARE_PUT_HOSTS]]
    bare = BarePut(client, [h for h in hosts[-BARE_PUT_HOSTS:] if not h.file_backed])
    cached = Scheduler(
        client, lambda: records, SchedulerSettings(strategy="cache", refresh_interval=3600)
    )
    direct = Scheduler(client, lambda: records, SchedulerSettings(strategy="placement"))
    started = time.perf_counter()
    cached.cache.refresh()
    load_s = time.perf_counter() - started
    series = interleave(run, [cached, bare, direct], timer)
    race = Series("cache, lost race")
    fillers: dict[str, int] = {}
    lose_races(cached, client, timer, race, fillers)
    verdict = check_no_overcommit(client, hosts, [*series, race], fillers)
    host_s = cached.cache.stats.last_host_refresh_s
    cached.close()
    direct.close()
    return [
        series[0].row(run.hosts, f"full refresh {load_s:.2f} s"),
        race.row(run.hosts, f"host refresh {host_s * 1000:.0f} ms"),
        series[2].row(run.hosts, ""),
        series[1].row(run.hosts, "no scheduling"),
    ], verdict


class BarePut:
    """PUT /allocations on a known host, no scheduling at all: the floor of any claim."""

    def __init__(self, client: PlacementClient, hosts: Sequence[Host]) -> None:
        self._client = client
        self._hosts = hosts
        self._next = 0

    def select_and_claim(self, spec: RequestSpec) -> Selection:
        host = self._hosts[self._next % len(self._hosts)]
        self._next += 1
        resources = {"MEMORY_MB": spec.memory_mb, "VCPU": spec.vcpus, "DISK_GB": spec.disk_gb}
        self._client.put_allocations(
            spec.instance_uuid, {host.uuid: resources}, PROJECT, USER, None
        )
        return Selection(host.name, host.uuid)


def interleave(run: Run, claimers: Sequence[Claimer], timer: TimedTransport) -> list[Series]:
    """Cache claim, bare PUT, and a Placement-candidates claim after every k-th, in turn."""
    cached, bare, direct = claimers
    series = [
        Series("cache (default)"),
        Series("bare PUT /allocations"),
        Series("allocation_candidates"),
    ]
    every = max(1, run.claims // max(1, run.baseline_claims))
    for i in range(run.claims):
        timed_claim(cached, timer, series[0], i)
        timed_claim(bare, timer, series[1], i)
        if i % every == 0 and len(series[2].totals) < run.baseline_claims:
            timed_claim(direct, timer, series[2], i)
    return series


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--serve-placement"]:
        return _serve_fast_schema(argv[1:])
    args = parse_args(argv)
    variants = {"stock": [False], "fast": [True], "both": [False, True]}[args.placement]
    rows: list[list[str]] = []
    for fast in variants:
        for count in args.hosts:
            baseline = (
                args.baseline_claims
                if args.baseline_claims is not None
                else (args.claims if count <= 2000 else min(args.claims, 30))
            )
            run = Run(count, args.claims, baseline, args.file_backed_every, fast, args.scratch)
            found, verdict = measure(run)
            label = "fast" if fast else "stock"
            print(f"# {count:,} hosts, {label} Placement: {verdict}")
            rows.extend([row[0], label, *row[1:]] for row in found)
    print(f"# load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(
        table(
            [
                "hosts",
                "placement",
                "strategy",
                "claims",
                "p50 ms",
                "p95 ms",
                "max ms",
                "own p50 ms",
                "notes",
            ],
            rows,
        )
    )
    print(
        "# own = time outside Placement requests (filtering, weighing, bookkeeping); "
        "fast = Placement with its JSON-schema validators cached"
    )
    return 0


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = bench_parser(
        "scheduling.scale",
        __doc__ or "",
        scratch=Path("/dev/shm"),
        scratch_help="where Placement's SQLite goes, best on tmpfs",
    )

    def sizes(text: str) -> list[int]:
        counts = [int(n) for n in text.split(",") if n]
        if not counts or min(counts) < 2 * BARE_PUT_HOSTS:
            raise argparse.ArgumentTypeError(f"host counts must be >= {2 * BARE_PUT_HOSTS}")
        return counts

    parser.add_argument(
        "--hosts",
        type=sizes,
        default=[1000, 10000],
        metavar="N,N,...",
        help="comma-separated host counts (default: 1000,10000)",
    )
    parser.add_argument(
        "--claims",
        type=at_least(1),
        default=200,
        metavar="N",
        help="claims with the cache (default 200)",
    )
    parser.add_argument(
        "--baseline-claims",
        type=at_least(0),
        default=None,
        metavar="N",
        help="allocation_candidates claims (default: --claims up to 2,000 "
        "hosts, else 30: each takes seconds at 10,000)",
    )
    parser.add_argument(
        "--file-backed-every",
        type=at_least(1),
        default=4,
        metavar="N",
        help="every Nth host has COMPUTE_MEM_BACKING_FILE (default 4)",
    )
    parser.add_argument(
        "--placement",
        choices=("stock", "fast", "both"),
        default="stock",
        help="stock Placement, Placement with its JSON-schema validators "
        "cached (patched in its own process), or both in turn",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(main())
