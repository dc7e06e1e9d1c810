"""A multi-create burst: N guests in one request, claimed in one POST vs one claim each.

Registers H hosts (MEMORY_MB 65536, VCPU 64, DISK_GB 1000; every 4th file-backed) straight
into a real standalone Placement's database, as bench/scheduling/scale.py does, then times
Scheduler.select_and_claim_many for a burst of N guests (4096 MiB, 2 vCPU, 20 GB; max_count N
in one request) with batch_claims on (one POST /allocations for all) and off (one
PUT /allocations each), interleaved round by round and alternating which goes first. Each
strategy has its own warm host-state cache, like two API processes. Afterwards every provider
touched is read back: usage must equal what was claimed and never exceed the inventory.

    .venv/bin/python -m bench.scheduling.burst [--hosts 10000] [--guests 100] [--rounds 5]
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid as uuidlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench._common import at_least, bench_parser, table
from bench.scheduling.scale import INVENTORY, TimedTransport, placement_server, register_hosts
from filemem.common.resources import MEMORY_BACKING_FILE_TRAIT
from filemem.placement.client import PlacementClient
from filemem.placement.http import HttpTransport
from filemem.scheduler import HostRecord, RequestSpec, Scheduler, SchedulerSettings

PROJECT, USER = "bench-project", "bench-user"
GUEST = {"MEMORY_MB": 4096, "VCPU": 2, "DISK_GB": 20}


@dataclass
class Series:
    label: str
    scheduler: Scheduler
    seconds: list[float] = field(default_factory=list)
    placement_s: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)
    # consumer -> provider, for the over-commit check
    claims: dict[str, str] = field(default_factory=dict)

    def row(self, guests: int) -> list[str]:
        ms = [s * 1000 for s in self.seconds]
        own = [(s - p) * 1000 for s, p in zip(self.seconds, self.placement_s, strict=True)]
        return [
            self.label,
            str(len(ms)),
            f"{statistics.median(ms):,.0f}",
            f"{min(ms):,.0f}",
            f"{max(ms):,.0f}",
            f"{statistics.median(ms) / guests:.1f}",
            f"{statistics.median(own):,.0f}",
            f"{statistics.median(self.requests):.0f}",
        ]


def burst(guests: int) -> list[RequestSpec]:
    return [
        RequestSpec(
            str(uuidlib.uuid4()),
            PROJECT,
            USER,
            memory_mb=GUEST["MEMORY_MB"],
            vcpus=GUEST["VCPU"],
            disk_gb=GUEST["DISK_GB"],
        )
        for _ in range(guests)
    ]


def timed_burst(series: Series, client: PlacementClient, timer: TimedTransport, n: int) -> None:
    specs = burst(n)
    requests, waited = client.request_count, timer.seconds
    started = time.perf_counter()
    selections = series.scheduler.select_and_claim_many(specs)
    series.seconds.append(time.perf_counter() - started)
    series.placement_s.append(timer.seconds - waited)
    series.requests.append(client.request_count - requests)
    for spec, selection in zip(specs, selections, strict=True):
        series.claims[spec.instance_uuid] = selection.provider_uuid


def check_no_overcommit(client: PlacementClient, claimed: Sequence[Series]) -> str:
    """Every provider touched: usage == what the bursts claimed there, and <= its inventory."""
    expected: dict[str, int] = {}
    for series in claimed:
        for provider in series.claims.values():
            expected[provider] = expected.get(provider, 0) + 1
    for provider, count in expected.items():
        usage = client.get_usages(provider)
        for rc, total in INVENTORY.items():
            used = usage.get(rc, 0)
            if used > total:
                raise AssertionError(f"over-commit on {provider}: {rc} {used} > {total}")
            if used != count * GUEST[rc]:
                raise AssertionError(f"{provider}: {rc} used {used}, claimed {count * GUEST[rc]}")
    guests = sum(expected.values())
    return f"{guests} guests on {len(expected)} providers checked, none over-committed"


def measure(
    hosts: int, guests: int, rounds: int, scratch: Path
) -> tuple[list[list[str]], str, float]:
    state = Path(tempfile.mkdtemp(prefix="burst-bench-", dir=scratch))
    try:
        with placement_server(state, fast_schema=False) as url:
            timer = TimedTransport(HttpTransport.with_token(url, "admin"))
            client = PlacementClient(timer)
            client.request("GET", f"/traits?name=in:{MEMORY_BACKING_FILE_TRAIT}")  # ready
            started = time.perf_counter()
            registered = register_hosts(state / "placement.sqlite", hosts, 4)
            print(f"# {hosts:,} hosts registered in {time.perf_counter() - started:.1f} s")
            records = [HostRecord(h.name, h.uuid) for h in registered]
            series = [
                Series(label, Scheduler(client, lambda: records, settings))
                for label, settings in (
                    ("batched (one POST)", SchedulerSettings(refresh_interval=3600)),
                    (
                        "one claim at a time",
                        SchedulerSettings(refresh_interval=3600, batch_claims=False),
                    ),
                )
            ]
            for one in series:
                started = time.perf_counter()
                one.scheduler.cache.refresh()
                print(f"# {one.label}: cache loaded in {time.perf_counter() - started:.1f} s")
            for i in range(rounds):
                for one in series if i % 2 == 0 else reversed(series):
                    timed_burst(one, client, timer, guests)
            verdict = check_no_overcommit(client, series)
            for one in series:
                one.scheduler.close()
            batched, single = (statistics.median(one.seconds) for one in series)
            return [one.row(guests) for one in series], verdict, single / batched
    finally:
        shutil.rmtree(state, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = bench_parser(
        "scheduling.burst",
        __doc__ or "",
        scratch=Path("/dev/shm"),
        scratch_help="where Placement's SQLite goes, best on tmpfs",
    )
    parser.add_argument("--hosts", type=at_least(1), default=10000, metavar="N")
    parser.add_argument("--guests", type=at_least(2), default=100, metavar="N")
    parser.add_argument("--rounds", type=at_least(1), default=5, metavar="N")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    rows, verdict, ratio = measure(args.hosts, args.guests, args.rounds, args.scratch)
    print(f"# {verdict}")
    print(f"# load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(
        table(
            [
                f"{args.guests} guests, {args.hosts:,} hosts",
                "bursts",
                "p50 ms",
                "min ms",
                "max ms",
                "p50 ms/guest",
                "own p50 ms",
                "requests",
            ],
            rows,
        )
    )
    print(f"# one claim at a time / batched (p50): {ratio:.1f}x")
    print("# own = time outside Placement requests; requests = Placement calls per burst")
    return 0


if __name__ == "__main__":
    sys.exit(main())
