"""bench/stats.py: the one place benchmarks compute percentiles."""

from __future__ import annotations

import ast
from pathlib import Path

from bench import stats

BENCH = Path(__file__).resolve().parents[2] / "bench"


def test_nearest_rank_percentiles() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert stats.percentile(values, 0.5) == 3.0
    assert stats.percentile(values, 0.0) == 1.0
    assert stats.percentile(values, 1.0) == 5.0
    assert stats.percentile(values, 0.99) == 5.0
    assert stats.percentile([7.0], 0.95) == 7.0


def test_p95_interpolates_inclusively() -> None:
    assert stats.p95([3.0]) == 3.0
    assert stats.p95([float(v) for v in range(1, 21)]) == 19.05


def test_no_other_benchmark_computes_its_own_percentiles() -> None:
    # Three copies (claim_throughput.percentile, control_plane.pct, density_report.p95) had
    # drifted apart in their scale of q; one module keeps one meaning.
    own = [
        f"{path.name}: {node.name}"
        for path in sorted(BENCH.glob("*.py"))
        if path.name != "stats.py"
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef) and node.name in {"percentile", "pct", "p95"}
    ]
    assert own == []
