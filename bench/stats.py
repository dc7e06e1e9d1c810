"""The statistics benchmarks report: nearest-rank percentiles and an interpolated p95."""

from __future__ import annotations

import statistics
from collections.abc import Sequence


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of a non-empty sequence: always a measured value."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def p95(values: Sequence[float]) -> float:
    """The 95th percentile interpolated between samples (statistics.quantiles, inclusive), for
    the density and write-back reports; a single sample is its own p95."""
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=20, method="inclusive")[-1]
