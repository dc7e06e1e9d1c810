"""Sync cost: time and requests of a no-change sync vs a change sync, embedded and standalone."""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import os
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench._common import bench_parser, standalone_placement, table
from bench.placement.claim_throughput import http_client, rotated, scratch_dir
from bench.stats import percentile
from filemem import conf as filemem_conf
from filemem.compute.host_check import driver_settings
from filemem.compute.tracker import ResourceTracker, SyncResult
from filemem.placement.client import PlacementClient
from filemem.placement.embedded import EmbeddedPlacement
from filemem.virt.libvirt.driver import LibvirtDriver

NO_CHANGE, CHANGE = "no-change", "change"
MEMORY_MB = (1024, 1536)  # the two file_backed_memory values a change sync flips between

DESCRIPTION = f"""\
Sync cost: time and Placement requests of the resource tracker's sync when nothing changed
(3 GETs, no write) vs when file_backed_memory changed (+ PUT inventories), on the embedded
Placement (in this process, SQLite) and a standalone one (`python -m filemem.cmd.placement`,
SQLite, over HTTP on 127.0.0.1), measured side by side in one run.

Per backend one host (its own state path, so one provider uuid) and two ResourceTrackers on
the same PlacementClient, configured with file_backed_memory = {MEMORY_MB[0]} and
{MEMORY_MB[1]} MiB (a real LibvirtDriver; the backing store is an empty directory of the run's
own). A no-change sync re-syncs the tracker whose value Placement holds; a change sync syncs
the other one. Each round does one of each on every backend, the backend order rotated and the
variant order alternated every round. Times are SyncResult.seconds (the whole sync: store
sample, inventory math, requests).
"""


@dataclass
class Host:
    """One backend's host: two trackers (one per file_backed_memory value), their samples."""

    label: str
    trackers: tuple[ResourceTracker, ResourceTracker]
    current: int = 0  # which tracker's inventory Placement holds
    samples: dict[str, list[SyncResult]] = field(
        default_factory=lambda: {NO_CHANGE: [], CHANGE: []}
    )
    drivers: list[LibvirtDriver] = field(default_factory=list)

    def close(self) -> None:
        for driver in self.drivers:
            driver.connection.close()

    def sync(self, variant: str, record: bool = True) -> SyncResult:
        if variant == CHANGE:
            self.current ^= 1
        result = self.trackers[self.current].sync()
        if record:
            self.samples[variant].append(result)
        return result


def conf_text(state_path: Path, host: str, file_backed_memory: int) -> str:
    """A file-backed TCG host's filemem.conf; the tracker gets its client injected."""
    return (
        f"[DEFAULT]\nhost = {host}\nstate_path = {state_path}\nram_allocation_ratio = 1.0\n"
        f"[libvirt]\nvirt_type = qemu\nconnection_uri = qemu:///system\n"
        f"file_backed_memory = {file_backed_memory}\n"
    )


def make_host(label: str, client: PlacementClient, state_path: Path) -> Host:
    """Two trackers on one state path (same provider), as two restarts with different config."""
    store = state_path / "store"
    store.mkdir(parents=True, exist_ok=True)
    trackers, drivers = [], []
    for memory_mb in MEMORY_MB:
        path = state_path / f"filemem-{memory_mb}.conf"
        path.write_text(conf_text(state_path, f"bench-sync-{state_path.name}", memory_mb))
        conf = filemem_conf.load(config_files=[str(path)])
        driver = LibvirtDriver(driver_settings(conf))
        drivers.append(driver)
        trackers.append(ResourceTracker(conf, driver, client, store_dir=store))
    return Host(label, (trackers[0], trackers[1]), drivers=drivers)


def warm_up(hosts: Sequence[Host], rounds: int) -> None:
    """Create each provider (first sync writes 3 times), then unmeasured rounds."""
    for host in hosts:
        first = host.sync(NO_CHANGE, record=False)
        if first.writes != 3:
            raise RuntimeError(f"{host.label}: first sync wrote {first.writes} times, not 3")
    for _ in range(rounds):
        for host in hosts:
            host.sync(NO_CHANGE, record=False)
            host.sync(CHANGE, record=False)


def measure(hosts: Sequence[Host], runs: int) -> None:
    for round_no in range(runs):
        variants = (NO_CHANGE, CHANGE) if round_no % 2 == 0 else (CHANGE, NO_CHANGE)
        for host in rotated(hosts, round_no):
            for variant in variants:
                host.sync(variant)


def _span(values: Sequence[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def rows(hosts: Sequence[Host]) -> list[list[str]]:
    out = []
    for host in hosts:
        base = statistics.median(r.seconds for r in host.samples[NO_CHANGE])
        for variant in (NO_CHANGE, CHANGE):
            results = host.samples[variant]
            ms = [r.seconds * 1000 for r in results]
            p50 = statistics.median(ms)
            out.append(
                [
                    host.label,
                    variant,
                    str(len(results)),
                    _span([r.requests for r in results]),
                    _span([r.writes for r in results]),
                    f"{p50:.2f}",
                    f"{percentile(ms, 0.95):.2f}",
                    f"{p50 / (base * 1000):.2f}",
                ]
            )
    return out


def report(hosts: Sequence[Host]) -> None:
    print(
        table(
            [
                "backend",
                "variant",
                "syncs",
                "requests",
                "writes",
                "p50 ms",
                "p95 ms",
                "p50 vs no-change",
            ],
            rows(hosts),
        )
    )
    for variant in (NO_CHANGE, CHANGE):
        medians = [statistics.median(r.seconds for r in h.samples[variant]) for h in hosts]
        print(
            f"# {variant} sync, {hosts[1].label} / {hosts[0].label} p50: "
            f"{medians[1] / medians[0]:.2f}"
        )
    wrong = [
        f"{h.label} {v}"
        for h in hosts
        for v, want in ((NO_CHANGE, 0), (CHANGE, 1))
        if any(r.writes != want for r in h.samples[v])
    ]
    if wrong:
        print(f"# NOTE: unexpected write counts in: {', '.join(wrong)} (store room changed?)")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = bench_parser(
        "placement.sync",
        DESCRIPTION,
        runs=30,
        runs_help="measured no-change and change syncs per backend",
        warmup=3,
        warmup_help="unmeasured rounds per backend first",
        scratch=Path("/var/tmp"),
        scratch_help="where the state paths and databases live",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with scratch_dir(args.scratch, "sync") as run_dir, contextlib.ExitStack() as stack:
        print(
            f"# placement sync: {args.runs} no-change + {args.runs} change syncs per backend, "
            f"interleaved, {args.warmup} warm-up rounds; state under {run_dir}"
        )
        print(
            f"# openstack-placement {importlib.metadata.version('openstack-placement')}, "
            f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
        )
        embedded = EmbeddedPlacement(run_dir / "embedded-db").client()
        url = stack.enter_context(
            standalone_placement(
                run_dir / "standalone-db", ["--state-path", str(run_dir / "standalone-db")]
            )
        )
        hosts = [
            make_host("embedded (in-process, SQLite)", embedded, run_dir / "host-embedded"),
            make_host("standalone HTTP, SQLite", http_client(url), run_dir / "host-standalone"),
        ]
        try:
            warm_up(hosts, args.warmup)
            measure(hosts, args.runs)
        finally:
            for host in hosts:
                host.close()
        report(hosts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
