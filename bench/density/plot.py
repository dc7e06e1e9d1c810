"""Density's figure: hot-set pass time and residency against memory written / R."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench.density.cases import CaseResult
from bench.density.report import GOAL_RATIO, Baseline, hot_figures

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def plot(cases: Sequence[CaseResult], base: Baseline, args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    limited = [c for c in cases if c.spec.limited]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for backing, colour in (("file", "tab:blue"), ("ram", "tab:red")):
        plot_backing(left, right, limited, backing, colour, base, args)
    left.axhline(GOAL_RATIO, color="grey", linestyle="--", linewidth=1, label=f"goal {GOAL_RATIO}x")
    left.axhline(1.0, color="black", linewidth=0.8)
    left.set_yscale("log")
    left.set_ylim(bottom=0.5)
    left.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))
    for axis in (left, right):
        axis.set_xticks(sorted({c.spec.guests * args.mem_mb / args.limit_mb for c in limited}))
    left.set_xlabel("memory written by the guests / R")
    left.set_ylabel("hot-set pass time / baseline (RAM-backed 1x, no limit)")
    left.set_title("price: hot-set pass time")
    right.set_xlabel("memory written by the guests / R")
    right.set_ylabel("% of guest memory resident in RAM")
    right.set_title("residency")
    right.set_ylim(bottom=0)
    for axis in (left, right):
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle(
        f"{args.guest_mb} MiB guests writing {args.mem_mb} MiB, hot set "
        f"{args.hot_mb} MiB, R = {args.limit_mb} MiB (TCG, 2 shared cores)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_backing(
    left: Axes,
    right: Axes,
    limited: Sequence[CaseResult],
    backing: str,
    colour: str,
    base: Baseline,
    args: argparse.Namespace,
) -> None:
    """One backing's lines on both axes, and a marker where none of its guests survived."""
    mine = sorted((c for c in limited if c.spec.backing == backing), key=lambda c: c.spec.factor)
    xs = [c.spec.guests * args.mem_mb / args.limit_mb for c in mine]
    figures = [hot_figures(c, base) for c in mine]
    for key, style, what in (("median_ratio", "o-", "median"), ("p95_ratio", "s--", "p95")):
        pts = [(x, f[key]) for x, f in zip(xs, figures, strict=True) if f[key] is not None]
        if pts:
            left.plot(
                *zip(*pts, strict=True), style, color=colour, label=f"{backing}-backed {what}"
            )
    shares = [
        (x, s * 100) for x, c in zip(xs, mine, strict=True) if (s := c.residency()) is not None
    ]
    if shares:
        right.plot(*zip(*shares, strict=True), "o-", color=colour, label=f"{backing}-backed")
    for x, c in zip(xs, mine, strict=True):
        if not c.survivors:
            for axis in (left, right):
                axis.axvline(x, color=colour, alpha=0.25, linestyle=":")
                axis.annotate(
                    f"{backing}-backed: none alive",
                    (x, 0.02),
                    xycoords=("data", "axes fraction"),
                    rotation=90,
                    color=colour,
                    fontsize=8,
                    ha="right",
                )
