"""Density: file- vs RAM-backed guests in one memory-limited partition at 1x, 2x, 4x its size."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path

from bench._common import REPO, at_least, bench_parser, session
from bench.density.cases import GUEST_OVERHEAD_MB
from bench.density.plot import plot
from bench.density.probes import environment
from bench.density.report import (
    GOAL_FACTOR,
    GOAL_RATIO,
    Baseline,
    case_json,
    fmt,
    goals,
    header_lines,
    legend_lines,
    memory_table,
    outcome_table,
)
from bench.density.run import DISTURBED, plan, run_case
from filemem.backing.residency import block_device_of

RESULTS = REPO / "bench" / "results"

DESCRIPTION = f"""\
Density: how many guests fit in R MiB of RAM, and the price. All guests of a case start in one
libvirt partition (a memory cgroup whose limit is R: a simulated host with R MiB of RAM, which
QEMU's own memory and the page cache of the memory files are charged to). Each guest runs the
test image's memcheck: it writes a pattern over --mem-mb MiB, then loops re-touching the first
--hot-mb MiB (one hot-set pass), checking all of it every --verify-every passes.

Cases, interleaved so drift hits both alike: for every factor F (--factors, default 1,2,4),
round(F * R / mem) guests, so that they write F x R MiB, once file-backed (filemem's default
config: file-backed memory, whole file allocated at start) and once RAM-backed
(file_backed_memory=0), each in its own fresh partition limited to R. The baseline for pass
times is the 1x set RAM-backed in a partition with no limit (run first and last): at 1x the
guests write R MiB, and their kernels and QEMU itself need more, so a RAM-backed 1x set cannot
fit in R (the RAM-backed 1x row shows it).

Per case: guests alive/booted at the end, kernel OOM kills in the partition (dmesg), CORRUPT
passes, boot time (spawn call to the FILLED line), hot-set pass time median and p95 and their
ratio to the baseline's, MiB written to the backing store's block device per guest per minute
during the measured window, and the share of guest memory resident in RAM (memory file pages
in the page cache for file-backed, QEMU RSS for RAM-backed). Writes results to
{RESULTS.relative_to(REPO)}/density.{{txt,json,png}} (--out-dir).

Goal: at {GOAL_FACTOR:g}x every file-backed guest alive and intact while the RAM-backed set
cannot be; hot-set passes at most {GOAL_RATIO}x slower than the baseline while the hot sets
(plus QEMU's own memory) fit in R.
"""


# -- command line -----------------------------------------------------------------------------


def factors(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"factors must be > 0: {text!r}")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = bench_parser("density", DESCRIPTION)
    add_size_options(parser)
    add_timing_options(parser)
    args = parser.parse_args(argv)
    if args.guest_mb is None:
        args.guest_mb = args.mem_mb + GUEST_OVERHEAD_MB
    if args.hot_mb > args.mem_mb:
        parser.error("--hot-mb must be <= --mem-mb")
    if args.mem_mb >= args.guest_mb:
        parser.error("--mem-mb must be below --guest-mb (the guest kernel needs memory too)")
    return args


def add_size_options(parser: argparse.ArgumentParser) -> None:
    """R, the guests' and memcheck's sizes and the factors: what a case holds."""
    parser.add_argument(
        "--limit-mb",
        type=at_least(64),
        default=512,
        metavar="MIB",
        help="R, the partition's memory limit (default 512)",
    )
    parser.add_argument(
        "--mem-mb",
        type=at_least(1),
        default=512,
        metavar="MIB",
        help="MiB each guest's memcheck writes (default 512)",
    )
    parser.add_argument(
        "--guest-mb",
        type=at_least(16),
        default=None,
        metavar="MIB",
        help=f"guest memory (default --mem-mb + {GUEST_OVERHEAD_MB}: room for the guest kernel)",
    )
    parser.add_argument(
        "--hot-mb",
        type=at_least(1),
        default=16,
        metavar="MIB",
        help="hot set each pass re-touches (default 16)",
    )
    parser.add_argument(
        "--factors",
        type=factors,
        default=[1.0, 2.0, 4.0],
        metavar="F,F,...",
        help="memory written / R per case (default 1,2,4)",
    )


def add_timing_options(parser: argparse.ArgumentParser) -> None:
    """How long and how a case runs, and where the results go."""
    parser.add_argument(
        "--duration",
        type=at_least(1),
        default=60,
        metavar="S",
        help="seconds measured per case once all guests filled (default 60)",
    )
    parser.add_argument(
        "--verify-every",
        type=at_least(1),
        default=50,
        metavar="N",
        help="a pass checking all memory every N passes (default 50)",
    )
    parser.add_argument(
        "--pass-delay-ms",
        type=at_least(0),
        default=100,
        metavar="MS",
        help="guest sleep between passes, leaving CPU to the others (default 100)",
    )
    parser.add_argument(
        "--fill-timeout",
        type=at_least(1),
        default=300,
        metavar="S",
        help="longest wait for a case's guests to fill (default 300)",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=RESULTS,
        metavar="DIR",
        help=f"where density.txt/json/png go (default {RESULTS})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    specs = plan(args)
    with session("fmdn") as s:
        env = environment(s, args)
        header = header_lines(env, args, specs)
        print("\n".join(header), flush=True)
        device = block_device_of(Path(env["memory_backing_dir"]))
        cases = [run_case(s, spec, args, device) for spec in specs]
    base = Baseline.of(cases)
    ordered = sorted(cases, key=lambda c: (c.spec.limited, c.spec.factor, c.spec.backing))
    report = [
        *header,
        "",
        outcome_table(ordered, base, args),
        "",
        memory_table(ordered, args),
        "",
        *legend_lines(args),
        "",
        *(
            f"{c.spec.label}{DISTURBED} (another test's store?): its figures are suspect"
            for c in ordered
            if c.store_changed
        ),
        f"baseline hot-set pass: median {fmt(base.median_ms)} ms, p95 {fmt(base.p95_ms)} ms, "
        f"mean {fmt(base.mean_ms, '.1f')} ms",
        *goals(ordered, base, args),
    ]
    text = "\n".join(report) + "\n"
    print()
    print(text, end="")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "density.txt").write_text(text)
    (args.out_dir / "density.json").write_text(
        json.dumps(
            {
                "config": {k: v for k, v in vars(args).items() if k != "out_dir"},
                "environment": env,
                "baseline": dataclasses.asdict(base),
                "goals": goals(ordered, base, args),
                "cases": [case_json(c, base, args) for c in cases],
            },
            indent=2,
        )
        + "\n"
    )
    plot(ordered, base, args, args.out_dir / "density.png")
    print(f"# wrote {args.out_dir}/density.txt, density.json, density.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
