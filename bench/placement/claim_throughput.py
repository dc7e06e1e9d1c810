"""Claim throughput: sequential claims per second on embedded vs standalone Placement."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import importlib.util
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from bench._common import at_least, bench_parser, standalone_placement, table
from bench.stats import percentile
from devtools.services import python_module
from filemem.placement.client import PlacementClient
from filemem.placement.embedded import EmbeddedPlacement
from filemem.placement.http import HttpTransport

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PG_USER = "postgres"
PROJECT, USER = "bench-project", "bench-user"
CLAIM = {"MEMORY_MB": 256, "VCPU": 1}
INVENTORY = {
    "MEMORY_MB": {"total": 10_000_000, "max_unit": 10_000_000},
    "VCPU": {"total": 1_000_000, "max_unit": 1_000_000},
}

T = TypeVar("T")

DESCRIPTION = """\
Claim throughput: sequential claims per second on the embedded Placement (in this process,
SQLite) and on standalone ones (`python -m filemem.cmd.placement` over HTTP on 127.0.0.1, SQLite,
and PostgreSQL 15 when installed), measured side by side in one run.

One provider with a large inventory per backend; N claims of MEMORY_MB 256 + VCPU 1 with
distinct consumers (PlacementClient.claim: GET + PUT /allocations/{consumer}), then N
deletes, interleaved in chunks (chunk claims on each backend in turn, the order rotated
every round) so machine noise hits every backend alike. Usage is checked after the claims
(N x 256 MiB) and after the deletes (0).
"""


# -- shared with bench.placement.sync ------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rotated(items: Sequence[T], by: int) -> list[T]:
    """items started at index `by` (mod len), so no item is always first."""
    shift = by % len(items)
    return [*items[shift:], *items[:shift]]


def http_client(url: str) -> PlacementClient:
    return PlacementClient(HttpTransport.with_token(url, "admin"))


@contextlib.contextmanager
def scratch_dir(base: Path, tag: str) -> Iterator[Path]:
    """A fresh directory under base (0755, so a postgres user can traverse it); removed after."""
    base.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix=f"filemem-bench-{tag}-", dir=base))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


# -- PostgreSQL ------------------------------------------------------------------------------

SERVE_PSYCOPG3 = "--serve-placement-psycopg3"


def _serve_placement_psycopg3(argv: Sequence[str]) -> int:
    """filemem-placement with SQLAlchemy's psycopg (3) dialect giving lastrowid as psycopg2 does.

    Placement 16 reads `result.lastrowid` after inserting an allocation
    (placement/objects/allocation.py) and discards it; psycopg 3 cursors have no lastrowid,
    so every PUT /allocations fails with 500. psycopg2 answers None on PostgreSQL >= 12 (no
    OIDs); this does the same, in the benchmark's Placement process only.
    """
    from sqlalchemy.dialects.postgresql import psycopg as sa_psycopg

    def no_lastrowid(self: object) -> None:
        return None

    sa_psycopg.PGExecutionContext_psycopg.get_lastrowid = no_lastrowid  # type: ignore[assignment]
    from filemem.cmd import placement

    return placement.main(list(argv))


def postgres_driver() -> tuple[str, list[str]]:
    """(SQLAlchemy dialect+driver, command to run Placement with): psycopg2 if present."""
    if importlib.util.find_spec("psycopg2") is None:
        return "postgresql+psycopg", python_module(
            "bench.placement.claim_throughput", SERVE_PSYCOPG3
        )
    return "postgresql+psycopg2", python_module("filemem.cmd.placement")


def postgres_missing() -> str | None:
    """Why the PostgreSQL backend cannot be measured here, or None when it can."""
    if not (PG_BIN / "initdb").exists():
        return f"{PG_BIN / 'initdb'} not found (PostgreSQL 15 server not installed)"
    if not any(importlib.util.find_spec(name) for name in ("psycopg", "psycopg2")):
        return "neither psycopg (3) nor psycopg2 is installed in this Python"
    if os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return f"no {PG_USER!r} system user to run the cluster as (we run as root)"
    return None


def _as_postgres(*command: str, log: Path) -> None:
    prefix = ["runuser", "-u", PG_USER, "--"] if os.geteuid() == 0 else []
    with log.open("a") as out:
        subprocess.run([*prefix, *command], check=True, stdout=out, stderr=subprocess.STDOUT)


@contextlib.contextmanager
def postgres_cluster(base: Path) -> Iterator[str]:
    """A throwaway cluster on 127.0.0.1:<free> with db `placement`; yields user@host:port/db."""
    home = base / "pg"
    home.mkdir(mode=0o700)
    if os.geteuid() == 0:
        shutil.chown(home, user=PG_USER)
    data, sock, log = home / "data", home / "sock", home / "pg.log"
    port = free_port()
    _as_postgres(
        str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", PG_USER, "--no-sync", log=log
    )
    _as_postgres("mkdir", "-m", "0700", str(sock), log=log)
    server_opts = f"-k {sock} -p {port} -c listen_addresses=127.0.0.1"
    try:
        _as_postgres(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(data),
            "-l",
            str(home / "server.log"),
            "-o",
            server_opts,
            "start",
            "-w",
            log=log,
        )
        _as_postgres(
            str(PG_BIN / "createdb"),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-U",
            PG_USER,
            "placement",
            log=log,
        )
        yield f"{PG_USER}@127.0.0.1:{port}/placement"
    finally:
        if (data / "postmaster.pid").exists():
            _as_postgres(
                str(PG_BIN / "pg_ctl"), "-D", str(data), "stop", "-m", "fast", "-w", log=log
            )


def postgres_version() -> str:
    done = subprocess.run(
        [str(PG_BIN / "postgres"), "--version"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip()


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Backend:
    label: str
    client: PlacementClient
    rp_uuid: str = field(default_factory=lambda: str(uuidlib.uuid4()))
    claim_s: list[float] = field(default_factory=list)
    delete_s: list[float] = field(default_factory=list)
    claim_requests: int = 0
    held: list[str] = field(default_factory=list)

    def prepare(self, warmup: int) -> None:
        """The provider and its inventory, then `warmup` unmeasured claims and deletes."""
        self.client.ensure_resource_provider(self.rp_uuid, f"bench-claims-{self.rp_uuid[:8]}")
        self.client.set_inventories(self.rp_uuid, INVENTORY)
        for _ in range(warmup):
            consumer = str(uuidlib.uuid4())
            self.client.claim(consumer, self.rp_uuid, CLAIM, PROJECT, USER)
            self.client.delete_allocations(consumer)

    def claims(self, count: int) -> None:
        for _ in range(count):
            consumer = str(uuidlib.uuid4())
            before = self.client.request_count
            started = time.perf_counter()
            self.client.claim(consumer, self.rp_uuid, CLAIM, PROJECT, USER)
            self.claim_s.append(time.perf_counter() - started)
            self.claim_requests += self.client.request_count - before
            self.held.append(consumer)

    def deletes(self, count: int) -> None:
        for _ in range(count):
            consumer = self.held.pop()
            started = time.perf_counter()
            if not self.client.delete_allocations(consumer):
                raise RuntimeError(f"{self.label}: allocation of {consumer} was already gone")
            self.delete_s.append(time.perf_counter() - started)

    def check_usage(self, claims: int) -> None:
        used = self.client.get_usages(self.rp_uuid)
        wanted = {rc: n * claims for rc, n in CLAIM.items()}
        if used != wanted:
            raise RuntimeError(f"{self.label}: usage {used}, expected {wanted}")


def interleaved(
    backends: Sequence[Backend], total: int, chunk: int, step: Callable[[Backend, int], None]
) -> None:
    """`total` operations per backend, `chunk` at a time on each in turn, order rotating."""
    done = round_no = 0
    while done < total:
        count = min(chunk, total - done)
        for backend in rotated(backends, round_no):
            step(backend, count)
        done += count
        round_no += 1


def measure(backends: Sequence[Backend], args: argparse.Namespace) -> None:
    for backend in backends:
        backend.prepare(args.warmup)
    interleaved(backends, args.runs, args.chunk, Backend.claims)
    for backend in backends:
        backend.check_usage(args.runs)
    interleaved(backends, args.runs, args.chunk, Backend.deletes)
    for backend in backends:
        backend.check_usage(0)


def report(backends: Sequence[Backend]) -> None:
    base = len(backends[0].claim_s) / sum(backends[0].claim_s)
    rows = []
    for b in backends:
        rate = len(b.claim_s) / sum(b.claim_s)
        ms = [s * 1000 for s in b.claim_s]
        rows.append(
            [
                b.label,
                str(len(b.claim_s)),
                f"{b.claim_requests / len(b.claim_s):.0f}",
                f"{rate:.1f}",
                f"{statistics.median(ms):.2f}",
                f"{percentile(ms, 0.95):.2f}",
                f"{len(b.delete_s) / sum(b.delete_s):.1f}",
                f"{rate / base:.2f}",
            ]
        )
    print(
        table(
            [
                "backend",
                "claims",
                "req/claim",
                "claims/s",
                "p50 ms",
                "p95 ms",
                "deletes/s",
                "claims/s vs embedded",
            ],
            rows,
        )
    )


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = bench_parser(
        "placement.claim_throughput",
        DESCRIPTION,
        runs=200,
        runs_help="claims (then deletes) per backend",
        warmup=5,
        warmup_help="unmeasured claim+delete pairs per backend first",
        scratch=Path("/var/tmp"),
        scratch_help="where the databases live, all on one filesystem",
    )
    parser.add_argument(
        "--chunk",
        type=at_least(1),
        default=20,
        metavar="N",
        help="claims on one backend before moving to the next (default 20)",
    )
    parser.add_argument(
        "--no-postgres", action="store_true", help="leave the PostgreSQL backend out"
    )
    return parser.parse_args(argv)


def _header(args: argparse.Namespace, run_dir: Path) -> None:
    print(
        f"# claim throughput: {args.runs} sequential claims then deletes per backend, "
        f"chunks of {args.chunk}, {args.warmup} warm-up pairs; databases under {run_dir}"
    )
    print(
        f"# openstack-placement {importlib.metadata.version('openstack-placement')}, "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )


def _postgres_backend(stack: contextlib.ExitStack, run_dir: Path) -> Backend:
    where = stack.enter_context(postgres_cluster(run_dir))
    dialect, serve = postgres_driver()
    url = stack.enter_context(
        standalone_placement(
            run_dir / "pg-placement", ["--database-connection", f"{dialect}://{where}"], serve
        )
    )
    print(
        f"# {postgres_version()}: throwaway cluster on 127.0.0.1 (defaults, fsync on), "
        f"Placement via {dialect}"
    )
    if SERVE_PSYCOPG3 in serve:
        print(
            "# NOTE: Placement 16 + psycopg 3 fails every PUT /allocations (500: 'Cursor' "
            "object has no attribute 'lastrowid'); its process runs with lastrowid = None, "
            "as psycopg2 gives (see _serve_placement_psycopg3)"
        )
    return Backend("standalone HTTP, PostgreSQL", http_client(url))


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == [SERVE_PSYCOPG3]:
        return _serve_placement_psycopg3(argv[1:])
    args = parse_args(argv)
    with scratch_dir(args.scratch, "claims") as run_dir, contextlib.ExitStack() as stack:
        _header(args, run_dir)
        backends = [
            Backend(
                "embedded (in-process, SQLite)", EmbeddedPlacement(run_dir / "embedded").client()
            )
        ]
        url = stack.enter_context(
            standalone_placement(run_dir / "sqlite", ["--state-path", str(run_dir / "sqlite")])
        )
        backends.append(Backend("standalone HTTP, SQLite", http_client(url)))
        missing = "--no-postgres given" if args.no_postgres else postgres_missing()
        if missing is None:
            backends.append(_postgres_backend(stack, run_dir))
        measure(backends, args)
        report(backends)
        if missing is not None:
            print(f"# standalone HTTP, PostgreSQL: not measured: {missing}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
