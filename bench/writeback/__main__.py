"""Writeback: what a file-backed guest rewriting its memory writes to the store, per sysctl."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from bench._common import MIB, REPO, at_least, bench_parser, session
from bench.density.cases import GUEST_OVERHEAD_MB
from bench.density.probes import environment
from bench.writeback.measure import FLUSH_MARGIN_S, Run, run_all
from bench.writeback.report import figures, header_lines, note_lines, result_table
from bench.writeback.sysctls import Sysctls, dotted, sigterm_as_interrupt
from filemem.backing.residency import block_device_of

RESULTS = REPO / "bench" / "results"

DESCRIPTION = f"""\
Writeback: MiB a file-backed guest that keeps rewriting its memory writes to the backing
store's block device, under each kernel writeback setting, with and without memory pressure.

One set of --guests guests (--guest-mb MiB, file-backed) runs the test image's memcheck: it
fills --mem-mb MiB, then rewrites the first --hot-mb MiB every pass (--pass-delay-ms between
passes). The same guests are measured under each writeback setting:
  defaults    the sysctls as found
  expire5m    vm.dirty_expire_centisecs=--expire-cs, vm.dirty_writeback_centisecs=--writeback-cs
  expire5m+bg expire5m and vm.dirty_background_bytes=--background-mb MiB
first with no memory limit on their partition (no pressure), then with the partition limited to
--limit-mb (pressure: eviction writes dirty pages whatever the sysctls say). Every window starts
with a sync (all dirty pages clean), so windows do not inherit each other's dirty pages; a
no-pressure window lasts at least expire + writeback interval + {FLUSH_MARGIN_S} s so it holds
a periodic flush, a pressure window --duration s.

The store is usually on the root disk, shared with other writers: a background window before
the guests boot and one with them paused (after a sync) measure the other writers' rate, which
is subtracted. Every sysctl changed is restored at the end (Ctrl-C and SIGTERM too) and the
restored values printed. Writes {RESULTS.relative_to(REPO)}/writeback.{{txt,json}} (--out-dir).
"""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = bench_parser("writeback", DESCRIPTION)
    add_guest_options(parser)
    add_window_options(parser)
    args = parser.parse_args(argv)
    if args.hot_mb > args.mem_mb:
        parser.error("--hot-mb must be <= --mem-mb")
    if args.mem_mb + GUEST_OVERHEAD_MB > args.guest_mb:
        parser.error(f"--guest-mb must be >= --mem-mb + {GUEST_OVERHEAD_MB} (the guest kernel)")
    return args


def add_guest_options(parser: argparse.ArgumentParser) -> None:
    """The guests, their memcheck workload and the pressure limit."""
    add = parser.add_argument
    add("--guests", type=at_least(1), default=2, metavar="N", help="guests (default 2)")
    add(
        "--guest-mb",
        type=at_least(16),
        default=512,
        metavar="MIB",
        help="guest memory (default 512)",
    )
    add(
        "--mem-mb",
        type=at_least(1),
        default=256,
        metavar="MIB",
        help="memcheck fills (default 256)",
    )
    add("--hot-mb", type=at_least(1), default=32, metavar="MIB", help="hot set (default 32)")
    add(
        "--pass-delay-ms",
        type=at_least(0),
        default=100,
        metavar="MS",
        help="between passes (default 100)",
    )
    add(
        "--verify-every",
        type=at_least(1),
        default=50,
        metavar="N",
        help="verify every N passes (default 50)",
    )
    add(
        "--limit-mb",
        type=at_least(64),
        default=384,
        metavar="MIB",
        help="pressure cases' partition limit (default 384)",
    )


def add_window_options(parser: argparse.ArgumentParser) -> None:
    """Window lengths, the settings' sysctl values, allocation, fill wait and output."""
    add = parser.add_argument
    add(
        "--duration",
        type=at_least(1),
        default=90,
        metavar="S",
        help="shortest window; pressure windows (default 90)",
    )
    add(
        "--background-s",
        type=at_least(1),
        default=30,
        metavar="S",
        help="each background window (default 30)",
    )
    add(
        "--expire-cs",
        type=at_least(1),
        default=30000,
        metavar="CS",
        help="dirty_expire_centisecs (default 30000)",
    )
    add(
        "--writeback-cs",
        type=at_least(1),
        default=3000,
        metavar="CS",
        help="dirty_writeback_centisecs (default 3000)",
    )
    add(
        "--background-mb",
        type=at_least(1),
        default=1024,
        metavar="MIB",
        help="dirty_background_bytes (default 1024)",
    )
    add(
        "--allocation",
        choices=["immediate", "ondemand"],
        default="immediate",
        help="memory file allocation (default immediate)",
    )
    add(
        "--fill-timeout",
        type=at_least(1),
        default=300,
        metavar="S",
        help="longest wait for the fill (default 300)",
    )
    add("--out-dir", type=Path, default=RESULTS, metavar="DIR", help=f"default {RESULTS}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run = Run()
    with sigterm_as_interrupt(), session("fmwb") as s:
        env = environment(s, args)
        header = header_lines(env, args)
        print("\n".join(header), flush=True)
        device = block_device_of(Path(env["memory_backing_dir"]))
        run_all(s, args, device, run)
    text = "\n".join([*header, "", result_table(run, args), "", *note_lines(run, args)]) + "\n"
    print()
    print(text, end="")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    recommendation = args.out_dir / "writeback.txt"
    # Keep a recommendation paragraph written by hand after the figures, if there is one.
    kept = ""
    if recommendation.exists():
        old = recommendation.read_text()
        if (at := old.find("\nRecommendation")) >= 0:
            kept = old[at:]
    recommendation.write_text(text + kept)
    (args.out_dir / "writeback.json").write_text(
        json.dumps(
            {
                "config": {k: v for k, v in vars(args).items() if k != "out_dir"},
                "environment": env,
                "sysctls_found": {dotted(k): v for k, v in Sysctls().found.items()},
                "backgrounds": [dataclasses.asdict(b) for b in run.backgrounds],
                "background_mib_per_min": None
                if (bg := run.background_rate()) is None
                else bg * 60 / MIB,
                "boot_write_bytes": run.boot_write_bytes,
                "oom_kills": run.oom_kills,
                "folios_at_end": run.folios,
                "windows": [figures(w, run, args) for w in run.windows],
                "restored": run.restored,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"# wrote {args.out_dir}/writeback.txt, writeback.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
