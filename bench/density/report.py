"""Density's report: pass times against the baseline, tables, goals, header lines and JSON."""

from __future__ import annotations

import argparse
import dataclasses
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench._common import MIB, table
from bench.density.cases import CaseResult, CaseSpec
from bench.stats import p95

GOAL_RATIO = 1.25
GOAL_FACTOR = 2.0


@dataclass(frozen=True)
class Baseline:
    median_ms: float | None
    p95_ms: float | None
    mean_ms: float | None

    @classmethod
    def of(cls, cases: Sequence[CaseResult]) -> Baseline:
        hot = [ms for c in cases if not c.spec.limited for ms in c.hot_ms()]
        if not hot:
            return cls(None, None, None)
        return cls(statistics.median(hot), p95(hot), statistics.fmean(hot))


def fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else value / base


def hot_figures(case: CaseResult, base: Baseline) -> dict[str, float | None]:
    hot = case.hot_ms()
    med = float(statistics.median(hot)) if hot else None
    high = p95(hot) if hot else None
    # memcheck prints whole ms: at ~10 ms the median moves in ~10 % steps, the mean does not.
    mean = statistics.fmean(hot) if hot else None
    return {
        "median_ms": med,
        "p95_ms": high,
        "mean_ms": mean,
        "median_ratio": ratio(med, base.median_ms),
        "p95_ratio": ratio(high, base.p95_ms),
        "mean_ratio": ratio(mean, base.mean_ms),
    }


def fits(case: CaseResult, args: argparse.Namespace) -> bool | None:
    """Whether the hot sets plus QEMU's own (anonymous) memory fit in R; None if not measured.
    The guest kernels' own working sets and dirty pages waiting for writeback come on top."""
    anon = case.mean_mib(case.anon_bytes)
    return None if anon is None else anon + len(case.booted) * args.hot_mb <= args.limit_mb


def outcome_table(cases: Sequence[CaseResult], base: Baseline, args: argparse.Namespace) -> str:
    rows = []
    for c in cases:
        hot = hot_figures(c, base)
        boots = c.boot_times()
        kills = "?" if c.oom_killed_pids is None else str(len(c.oom_killed_pids))
        rows.append(
            [
                c.spec.label,
                f"{c.spec.guests * args.mem_mb / args.limit_mb:.2f}",
                f"{len(c.survivors)}/{len(c.booted)}"
                + ("" if len(c.booted) == c.spec.guests else f" of {c.spec.guests}"),
                kills,
                str(c.corrupt()),
                str(min(c.verified_ok(), default=0)),
                f"{fmt(statistics.median(boots) if boots else None, '.1f')}/"
                f"{fmt(max(boots) if boots else None, '.1f')}",
                fmt(hot["median_ms"]),
                fmt(hot["p95_ms"]),
                fmt(hot["mean_ms"], ".1f"),
                fmt(hot["median_ratio"], ".2f"),
                fmt(hot["p95_ratio"], ".2f"),
                fmt(hot["mean_ratio"], ".2f"),
                str(len(c.hot_ms())),
                fmt(c.write_mib_per_guest_min(), ".1f"),
                fmt(_percent(c.residency()), ".0f"),
                str(len(c.other_guests)),
            ]
        )
    return table(
        [
            "case",
            "written/R",
            "alive/booted",
            "OOM kills",
            "CORRUPT",
            "min verified",
            "boot s med/max",
            "hot ms med",
            "hot ms p95",
            "hot ms mean",
            "x base med",
            "x base p95",
            "x base mean",
            "hot passes",
            "MiB/guest/min",
            "resident %",
            "other guests",
        ],
        rows,
    )


def memory_table(cases: Sequence[CaseResult], args: argparse.Namespace) -> str:
    rows = []
    for c in cases:
        anon = c.mean_mib(c.anon_bytes)
        fit = fits(c, args)
        rows.append(
            [
                c.spec.label,
                f"{c.spec.guests}",
                f"{c.max_usage_bytes / MIB:.0f}",
                str(c.failcnt),
                fmt(anon),
                fmt(c.mean_mib(c.cache_bytes)),
                "-"
                if anon is None or c.spec.backing != "file"
                else f"{anon + len(c.booted) * args.hot_mb:.0f} ({'fits' if fit else 'over'})",
                fmt(c.boot_write_mib_per_guest()),
                f"{c.window_s:.0f}",
                str(c.memcheck_exits()),
                "-"
                if (folios := c.folios()) is None
                else f"{folios[0] * 100:.0f} % / {folios[1]:.0f} KiB",
            ]
        )
    return table(
        [
            "case",
            "guests",
            "max usage MiB",
            "failcnt",
            "QEMU anon MiB",
            "cache MiB",
            "anon+hot MiB",
            "boot write MiB/guest",
            "window s",
            "memcheck exits",
            "large folios / mean",
        ],
        rows,
    )


def _percent(share: float | None) -> float | None:
    return None if share is None else share * 100


def goals(cases: Sequence[CaseResult], base: Baseline, args: argparse.Namespace) -> list[str]:
    lines = []
    at = {(c.spec.backing, c.spec.factor): c for c in cases if c.spec.limited}
    file_case, ram_case = at.get(("file", GOAL_FACTOR)), at.get(("ram", GOAL_FACTOR))
    if file_case is None or ram_case is None:
        lines.append(f"goal 1 ({GOAL_FACTOR:g}x): not run (--factors lacks {GOAL_FACTOR:g})")
    else:
        intact = (
            len(file_case.survivors) == file_case.spec.guests
            and file_case.corrupt() == 0
            and min(file_case.verified_ok(), default=0) >= 1
        )
        ram_fails = len(ram_case.survivors) < ram_case.spec.guests
        lines.append(
            f"goal 1: at {GOAL_FACTOR:g}x every file-backed guest alive and intact "
            f"({len(file_case.survivors)}/{file_case.spec.guests} alive, {file_case.corrupt()} "
            f"CORRUPT, each verified >= {min(file_case.verified_ok(), default=0)} times) while "
            f"the RAM-backed set cannot be ({len(ram_case.survivors)}/{ram_case.spec.guests} "
            f"alive): {'MET' if intact and ram_fails else 'NOT MET'}"
        )
    verdicts, met = [], []
    for c in cases:
        if not c.spec.limited or c.spec.backing != "file":
            continue
        hot = hot_figures(c, base)
        med = hot["median_ratio"]
        if not fits(c, args):
            verdicts.append(
                f"  {c.spec.label}: hot sets + QEMU's memory do not fit in R: not "
                f"judged (median x{fmt(med, '.2f')})"
            )
            continue
        met.append(med is not None and med <= GOAL_RATIO)
        verdicts.append(
            f"  {c.spec.label}: median x{fmt(med, '.2f')} (p95 "
            f"x{fmt(hot['p95_ratio'], '.2f')}, mean x{fmt(hot['mean_ratio'], '.2f')})"
            f": {'MET' if met[-1] else 'NOT MET'}"
        )
    overall = "MET" if met and all(met) else "NOT MET" if met else "NOT JUDGED (nothing fit)"
    lines.append(
        f"goal 2: file-backed hot-set pass median at most {GOAL_RATIO}x the baseline's "
        f"while hot sets + QEMU's own memory fit in R: {overall}"
    )
    lines.extend(verdicts)
    return lines


def header_lines(
    env: dict[str, Any], args: argparse.Namespace, specs: Sequence[CaseSpec]
) -> list[str]:
    shared = env["device_shared_with"]
    return [
        f"# density: R = {args.limit_mb} MiB partition limit; guests of {args.guest_mb} MiB, "
        f"memcheck writes {args.mem_mb} MiB, hot set {args.hot_mb} MiB, verify every "
        f"{args.verify_every} passes, {args.pass_delay_ms} ms between passes; "
        f"{args.duration} s measured per case after all guests filled",
        f"# cases: {', '.join(f'{c.label} ({c.guests})' for c in specs)}",
        f"# kernel {env['kernel']}, {env['cpus']} CPUs, libvirt {env['libvirt']}, QEMU "
        f"{env['qemu']}, {env['virt_type']}; memory files in {env['memory_backing_dir']} on "
        f"block device {env['backing_device']}"
        + (
            f", SHARED with {', '.join(shared)}: other writers (logs, other work on this host) "
            "count in the write rates; the RAM-backed rows show that background"
            if shared
            else " (not shared with / or the logs)"
        ),
    ]


def legend_lines(args: argparse.Namespace) -> list[str]:
    return [
        "written/R: MiB memcheck writes over all guests / R. alive/booted: guests running at the",
        "end / guests whose spawn succeeded. OOM kills: kernel log oom-kill lines for the case's",
        "partition. min verified: fewest intact verifying passes of any guest. boot: spawn call",
        "to the FILLED line. hot ms: in-guest time of one hot-set pass in the measured window",
        "(memcheck prints whole ms, so near 10 ms the median moves in ~10 % steps);",
        "x base: over the baseline (base-a + base-b: the 1x set RAM-backed, no limit).",
        "MiB/guest/min: block device writes in the window. resident %: memory file pages in the",
        "page cache / file size (file-backed), QEMU RSS / guest memory (RAM-backed, QEMU's own",
        "memory included). anon+hot: partition anonymous memory (QEMU) + hot sets, vs R =",
        f"{args.limit_mb} MiB. large folios / mean: share of the memory file's mapped pages",
        "held in folios larger than a page, and the mean folio size, at the window's end;",
        "reclaim, writeback and read-in move whole folios.",
    ]


def case_json(c: CaseResult, base: Baseline, args: argparse.Namespace) -> dict[str, Any]:
    return {
        **dataclasses.asdict(c.spec),
        "partition": c.partition,
        "written_over_limit": c.spec.guests * args.mem_mb / args.limit_mb,
        "booted": len(c.booted),
        "alive": len(c.survivors),
        "oom_killed_pids": c.oom_killed_pids,
        "corrupt_passes": c.corrupt(),
        "verified_ok_per_guest": c.verified_ok(),
        "memcheck_exits": c.memcheck_exits(),
        "boot_s": c.boot_times(),
        "hot": hot_figures(c, base),
        "hot_passes": len(c.hot_ms()),
        "window_s": c.window_s,
        "window_write_bytes": c.window_write_bytes,
        "write_mib_per_guest_min": c.write_mib_per_guest_min(),
        "boot_write_bytes": c.boot_write_bytes,
        "residency_share": c.residency(),
        "partition_failcnt": c.failcnt,
        "partition_max_usage_bytes": c.max_usage_bytes,
        "partition_anon_mib_mean": c.mean_mib(c.anon_bytes),
        "partition_cache_mib_mean": c.mean_mib(c.cache_bytes),
        "hot_sets_fit": fits(c, args),
        "other_guests": c.other_guests,
        "elapsed_s": c.elapsed_s,
        "store_changed": c.store_changed,
        "guests": [
            {
                "name": r.name,
                "spawn_error": r.spawn_error,
                "boot_s": r.boot_s,
                "survived": r.survived,
                "passes": len(r.passes),
                "window_hot_ms": [
                    p.ms for p in r.passes[r.passes_before_window :] if not p.verified
                ],
                "verified_ok": sum(1 for p in r.passes if p.verified and p.ok),
                "corrupt": sum(1 for p in r.passes if not p.ok),
                "residency_samples": r.residency,
                "folios": None if r.folios is None else dataclasses.asdict(r.folios),
            }
            for r in c.runs
        ],
    }
