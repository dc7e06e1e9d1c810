"""Interleaved A/B pairs of api_boot_overhead and their report: per-pair times, ratios, phases."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bench._common import interleaved, median, ms, table
from bench.api_boot_overhead.boot import ApiSample, Bench, VirshSample, boot_api, boot_virsh

TARGET = 1.10


@dataclass(frozen=True)
class Pair:
    order: str  # "AB" or "BA"
    a: ApiSample
    b: VirshSample
    others: frozenset[str]  # other guests seen running during the pair (noise)


def run_pair(b: Bench, i: int) -> Pair:
    """Pair i: A then B when i is even, B then A when odd."""
    order = "BA" if i % 2 else "AB"
    a: ApiSample | None = None
    v: VirshSample | None = None
    t0 = time.perf_counter()
    for which in order:
        if which == "A":
            a = boot_api(b, f"a{i}")
        else:
            v = boot_virsh(b, f"b{i}")
    assert a is not None and v is not None
    return Pair(order, a, v, frozenset(b.watch.between(t0, time.perf_counter())))


def run_pairs(b: Bench, warmup: int, runs: int) -> list[Pair]:
    """Even pairs run A then B (the first takes B's template), odd ones B then A."""
    return interleaved(warmup, runs, lambda i: run_pair(b, i))


def ratios(pairs: list[Pair]) -> tuple[float, float]:
    """(median over pairs of A/B, ratio of the medians), console ready times."""
    return (
        median([p.a.ready_s / p.b.ready_s for p in pairs]),
        median([p.a.ready_s for p in pairs]) / median([p.b.ready_s for p in pairs]),
    )


def pair_table(pairs: list[Pair]) -> str:
    rows = [
        [
            str(i),
            p.order,
            ms(p.a.ready_s),
            ms(p.b.ready_s),
            f"{p.a.ready_s / p.b.ready_s:.3f}",
            ms(p.a.post_s),
            ms(p.a.agent_s),
            ms(p.a.running_s),
            ms(p.b.call_s),
            "*" if p.others else "",
        ]
        for i, p in enumerate(pairs, start=1)
    ]
    rows.append(
        [
            "median",
            "",
            ms(median([p.a.ready_s for p in pairs])),
            ms(median([p.b.ready_s for p in pairs])),
            f"{ratios(pairs)[0]:.3f}",
            ms(median([p.a.post_s for p in pairs])),
            ms(median([p.a.agent_s for p in pairs])),
            ms(median([p.a.running_s for p in pairs])),
            ms(median([p.b.call_s for p in pairs])),
            "",
        ]
    )
    return table(
        [
            "run",
            "order",
            "A ready ms",
            "B ready ms",
            "A/B",
            "A POST ms",
            "A agent ms",
            "A running ms",
            "B create ms",
            "noisy",
        ],
        rows,
    )


def phase_table(pairs: list[Pair]) -> str:
    """Medians of each phase (ms): where A's time goes, next to B's."""

    def med(pick: Callable[[Pair], float]) -> str:
        return ms(median([pick(p) for p in pairs]))

    rows = [
        ["POST /servers answered (schedule, Placement claim, DB)", med(lambda p: p.a.post_s), ""],
        [
            "  answer -> agent made the instance dir (long-poll wake-up)",
            med(lambda p: p.a.agent_s - p.a.post_s),
            "",
        ],
        [
            "  instance dir -> domain defined (config, capacity guard)",
            med(lambda p: p.a.defined_s - p.a.agent_s),
            "",
        ],
        [
            "  defined -> running (start) / `virsh create` returned",
            med(lambda p: p.a.running_s - p.a.defined_s),
            med(lambda p: p.b.call_s),
        ],
        ["start -> guest running (total)", med(lambda p: p.a.running_s), med(lambda p: p.b.call_s)],
        [
            "guest running -> console ready line",
            med(lambda p: p.a.ready_s - p.a.running_s),
            med(lambda p: p.b.ready_s - p.b.call_s),
        ],
        [
            "start -> console ready line (total)",
            med(lambda p: p.a.ready_s),
            med(lambda p: p.b.ready_s),
        ],
    ]
    return table(["phase (medians; polled every 20 ms)", "A API ms", "B virsh ms"], rows)


def report(pairs: list[Pair]) -> bool:
    """Print the tables and ratios; True when the median per-pair ratio meets TARGET."""
    print(pair_table(pairs))
    pair_ratio, of_medians = ratios(pairs)
    ok = pair_ratio <= TARGET
    print(
        f"\nboot to ready (A POST /servers -> ready line / B virsh create -> ready line): "
        f"median of per-pair ratios {pair_ratio:.3f}, ratio of medians {of_medians:.3f}; "
        f"target <= {TARGET:.2f}: {'MET' if ok else 'NOT MET'}"
    )
    overhead = median([p.a.ready_s - p.b.ready_s for p in pairs])
    print(f"median per-pair difference A - B: {ms(overhead)} ms\n")
    print(phase_table(pairs))
    quiet = [p for p in pairs if not p.others]
    if len(quiet) < len(pairs):
        line = "none" if not quiet else "{:.3f} (ratio of medians {:.3f})".format(*ratios(quiet))
        print(
            f"\n* = other guests ran during the pair; quiet pairs only ({len(quiet)}/"
            f"{len(pairs)}): median ratio {line}"
        )
    return ok
