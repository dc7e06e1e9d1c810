"""The control plane at scale: simulated agents long-polling one filemem-api over real HTTP.

Each simulated agent (an asyncio task with httpx, no libvirt) registers its host with
PUT /filemem/v1/services/{host}, then long-polls GET /filemem/v1/hosts/{host}/instances
(since=cursor, wait=20 s, the agent's default) in a loop, as filemem-compute does. One
filemem-api process (SQLite, or with --database PostgreSQL) serves them, run twice:

  notify  [api] change_notifications on, long_poll_recheck_interval 5 s (the defaults)
  poll    change_notifications off, long_poll_recheck_interval 0.25 s (filemem before)

Measured in each: while idle, the API process's CPU (/proc/<pid>/stat) and its SQL
statements per second (counted in the API by FILEMEM_QUERY_COUNT_FILE); then the delay
from a change (POST os-resetState of a server pinned to a host, through the API) to that
host's agent returning from its long-poll with the new cursor, p50/p99 over --changes.
"""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import statistics
import sys
import time
import uuid as uuidlib
from argparse import ArgumentParser, Namespace
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench._common import SCRATCH, at_least, bench_parser, table
from bench.control_plane.agents import WATCH_S, Agents
from bench.control_plane.api import MODES, TOKEN, api_process, database_url, seed
from bench.stats import percentile
from devtools import query_count
from devtools.services import ServiceProcess

SETTLE_S = WATCH_S + 3.0  # every agent has started watching, at its own time
WAKE_TIMEOUT_S = 60.0
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    database: str
    mode: str
    agents: int
    idle_s: float
    cpu_s: float
    queries: int
    polls: int
    rss_mib: float
    wakes: list[float] = field(default_factory=list)
    posts: list[float] = field(default_factory=list)

    @property
    def cpu_pct(self) -> float:
        return 100 * self.cpu_s / self.idle_s

    @property
    def qps(self) -> float:
        return self.queries / self.idle_s

    @property
    def after_posts(self) -> list[float]:
        """From each POST answered to its host's agent getting the change."""
        return [w - p for w, p in zip(self.wakes, self.posts, strict=True)]


def cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of `pid`."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- one run: idle, then changes -----------------------------------------------------------


async def measure_idle(api: ServiceProcess, counts: Path, agents: Agents, idle_s: float) -> Result:
    await asyncio.sleep(SETTLE_S)
    cpu0, q0, polls0, t0 = (
        cpu_seconds(api.pid),
        query_count.read(counts),
        agents.polls,
        time.monotonic(),
    )
    await asyncio.sleep(idle_s)
    cpu1, q1, polls1, t1 = (
        cpu_seconds(api.pid),
        query_count.read(counts),
        agents.polls,
        time.monotonic(),
    )
    return Result(
        "", "", len(agents.hosts), t1 - t0, cpu1 - cpu0, q1 - q0, polls1 - polls0, rss_mib(api.pid)
    )


async def measure_changes(
    url: str, agents: Agents, servers: dict[str, str], args: Namespace, result: Result
) -> None:
    """--parallel operators, each POSTing os-resetState to its own hosts' pinned servers one
    after another and waiting each time for that host's agent to return with the new
    cursor; --changes in all."""
    hosts = list(servers)
    # A fresh connection per POST: a kept-alive one may have been closed by the server while
    # its stream waited (uvicorn keeps idle connections 5 s), and a retry would be timed.
    async with httpx.AsyncClient(
        base_url=url,
        headers={"X-Auth-Token": TOKEN},
        timeout=WAKE_TIMEOUT_S,
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as operator:

        async def stream(k: int) -> None:
            rng = random.Random(k)
            own = hosts[k :: args.parallel]  # no host is changed by two streams at once
            for n, _ in enumerate(range(k, args.changes, args.parallel)):
                host = own[n % len(own)]
                # Off the 0.25 s polling grid, as changes come in real life.
                await asyncio.sleep(rng.uniform(0.02, 0.12))
                event = asyncio.Event()
                agents.expect[host] = event
                started = time.monotonic()
                response = await operator.post(
                    f"/v2.1/servers/{servers[host]}/action",
                    json={"os-resetState": {"state": "active"}},
                )
                answered = time.monotonic()
                assert response.status_code == 202, response.text
                await asyncio.wait_for(event.wait(), WAKE_TIMEOUT_S)
                result.wakes.append(agents.woke[host] - started)
                result.posts.append(answered - started)

        await asyncio.gather(*(stream(k) for k in range(args.parallel)))


async def run_agents(
    url: str, api: ServiceProcess, counts: Path, servers: dict[str, str], args: Namespace
) -> Result:
    hosts = [f"bench-host-{i:05d}" for i in range(args.agents)]
    agents = Agents(url, hosts)
    agents.start()
    try:
        started = time.monotonic()
        await agents.wait_ready(timeout=1200)
        agents.go.set()
        print(
            f"#   {len(hosts)} agents registered and watching in "
            f"{time.monotonic() - started:.1f} s",
            flush=True,
        )
        result = await measure_idle(api, counts, agents, args.idle)
        await measure_changes(url, agents, servers, args, result)
        if agents.errors:
            print(f"#   {agents.errors} long-poll errors (retried)", flush=True)
        return result
    finally:
        await agents.stop()


def run_database(kind: str, args: Namespace) -> list[Result]:
    """Both modes, one after the other, on one database: the hosts' services registered in
    the first run are known in the second (a re-registration is a heartbeat), which keeps
    the set-up short; the measurements start once every agent waits."""
    state = args.scratch / f"control-plane-{uuidlib.uuid4().hex[:8]}"
    state.mkdir(parents=True)
    results = []
    try:
        with database_url(kind, state) as url:
            step = max(1, args.agents // args.hosts_changed)
            changed = [f"bench-host-{i:05d}" for i in range(0, args.agents, step)]
            servers = seed(url, changed[: args.hosts_changed])
            for mode in args.modes:
                with api_process(state / mode, url, mode) as (api, counts):
                    print(f"# {kind} / {mode}: API pid {api.pid} at {api.ready_value}", flush=True)
                    result = asyncio.run(run_agents(api.ready_value, api, counts, servers, args))
                result.database, result.mode = kind, mode
                results.append(result)
        return results
    finally:
        shutil.rmtree(state, ignore_errors=True)


# -- report ----------------------------------------------------------------------------------


def rows(results: Sequence[Result]) -> list[list[str]]:
    return [
        [
            f"{r.database} / {r.mode}",
            f"{r.agents}",
            f"{r.cpu_pct:.1f}",
            f"{r.qps:.0f}",
            f"{r.polls / r.idle_s:.1f}",
            f"{r.rss_mib:.0f}",
            f"{len(r.wakes)}",
            f"{percentile(r.wakes, 0.50) * 1000:.1f}",
            f"{percentile(r.wakes, 0.99) * 1000:.1f}",
            f"{max(r.wakes) * 1000:.1f}",
            f"{statistics.median(r.posts) * 1000:.1f}",
            f"{percentile(r.posts, 0.99) * 1000:.1f}",
            f"{percentile(r.after_posts, 0.99) * 1000:.1f}",
        ]
        for r in results
    ]


HEADERS = [
    "database / mode",
    "agents",
    "idle CPU %",
    "queries/s",
    "polls/s",
    "RSS MiB",
    "changes",
    "wake p50 ms",
    "wake p99 ms",
    "wake max ms",
    "POST p50 ms",
    "POST p99 ms",
    "after POST p99 ms",
]


def ratios(results: Sequence[Result]) -> list[str]:
    lines = []
    for kind in dict.fromkeys(r.database for r in results):
        by_mode = {r.mode: r for r in results if r.database == kind}
        if set(by_mode) != set(MODES):
            continue
        poll, notify = by_mode["poll"], by_mode["notify"]
        lines.append(
            f"# {kind}: poll / notify: idle CPU {poll.cpu_pct / max(notify.cpu_pct, 0.01):.1f}x, "
            f"queries/s {poll.qps / max(notify.qps, 0.01):.1f}x, wake p50 "
            f"{percentile(poll.wakes, 0.50) / percentile(notify.wakes, 0.50):.1f}x, wake p99 "
            f"{percentile(poll.wakes, 0.99) / percentile(notify.wakes, 0.99):.1f}x"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    kinds = ["sqlite", "postgresql"] if args.database == "both" else [args.database]
    results = [result for kind in kinds for result in run_database(kind, args)]
    print(f"# load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(table(HEADERS, rows(results)))
    for line in ratios(results):
        print(line)
    print(
        "# idle: API process CPU (% of one core) and SQL statements per second over "
        f"{args.idle:g} s with every agent waiting; polls/s = long-polls answered"
    )
    print(
        "# wake = POST os-resetState sent -> that host's agent got the new cursor; after POST ="
        " POST answered -> the agent got it"
    )
    return 0


def parse_args(argv: Sequence[str] | None) -> Namespace:
    parser = bench_parser("control_plane", __doc__ or "", scratch=SCRATCH)
    add_options(parser)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    args.hosts_changed = min(args.hosts_changed, args.agents)
    if args.parallel > args.hosts_changed:
        parser.error("--parallel: at most --hosts-changed (one change in flight per host)")
    args.modes = [mode.strip() for mode in args.modes.split(",")]
    unknown = set(args.modes) - set(MODES)
    if unknown or not args.modes:
        parser.error(f"--modes: unknown {sorted(unknown)}; choose from {', '.join(MODES)}")
    return args


def add_options(parser: ArgumentParser) -> None:
    """The bench's own options (bench_parser adds --scratch)."""
    parser.add_argument(
        "--agents",
        type=at_least(1),
        default=1000,
        metavar="N",
        help="simulated agents, one host each (default 1000)",
    )
    parser.add_argument(
        "--changes",
        type=at_least(1),
        default=120,
        metavar="N",
        help="changes whose wake-up delay is measured (default 120)",
    )
    parser.add_argument(
        "--hosts-changed",
        type=at_least(1),
        default=100,
        metavar="N",
        help="hosts the changes go to, round robin (default 100)",
    )
    parser.add_argument(
        "--idle",
        type=float,
        default=20.0,
        metavar="S",
        help="seconds of idle measurement (default 20)",
    )
    parser.add_argument(
        "--parallel",
        type=at_least(1),
        default=4,
        metavar="N",
        help="changes in flight at once, on different hosts (default 4)",
    )
    parser.add_argument(
        "--database",
        choices=["sqlite", "postgresql", "both"],
        default="sqlite",
        help="where the API keeps its data (default sqlite; postgresql: a throwaway cluster)",
    )
    parser.add_argument(
        "--modes",
        default="poll,notify",
        metavar="M,M",
        help="modes to run, in this order (default poll,notify; the first also registers "
        "the hosts for the first time)",
    )


if __name__ == "__main__":
    sys.exit(main())
