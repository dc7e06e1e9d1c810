"""scripts/check: the full run CI does, and --fast (lint, format, layers, types, unit tests)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def commands(*args: str) -> list[str]:
    """The commands scripts/check would run, printed by its dry run (nothing is run)."""
    done = subprocess.run(
        [str(REPO / "scripts" / "check"), *args],
        env={**os.environ, "FILEMEM_CHECK_DRY_RUN": "1"},
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if not line.startswith("== ")]


def test_fast_runs_every_static_check_and_the_unit_tests_without_coverage() -> None:
    ran = commands("--fast")
    assert [line.split()[0] for line in ran[:5]] == [
        ".venv/bin/ruff",
        ".venv/bin/ruff",
        ".venv/bin/lint-imports",
        ".venv/bin/mypy",
        ".venv/bin/vulture",
    ]
    # Without libvirtd and without root: a developer's own account runs it.
    assert ran[5:] == [".venv/bin/python -m pytest -q -m not functional and not root tests/unit"]


def test_fast_passes_extra_arguments_to_pytest() -> None:
    assert commands("--fast", "-k", "version")[-1].endswith("tests/unit -k version")


def test_the_full_run_measures_coverage_against_the_floor() -> None:
    ran = commands()
    assert len(ran) == 6
    assert "--cov=filemem" in ran[-1] and "--cov-fail-under=85" in ran[-1]
    assert "--cov-fail-under=0" in commands("-m", "not functional")[-1]
