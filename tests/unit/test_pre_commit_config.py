"""The pre-commit hooks run the project's own tools from .venv and fetch nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]


def hooks() -> list[dict[str, Any]]:
    config = yaml.safe_load((REPO / ".pre-commit-config.yaml").read_text())
    # A remote repo would be cloned at the first commit: only local hooks, no network.
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    found: list[dict[str, Any]] = config["repos"][0]["hooks"]
    return found


def test_ruff_format_and_mypy_run_from_the_venv() -> None:
    by_id = {hook["id"]: hook for hook in hooks()}
    assert {"ruff", "ruff-format", "mypy"} <= set(by_id)
    for hook in by_id.values():
        assert hook["language"] == "system"
        assert hook["entry"].startswith(".venv/bin/")
        assert (REPO / hook["entry"].split()[0]).exists(), hook["entry"]
