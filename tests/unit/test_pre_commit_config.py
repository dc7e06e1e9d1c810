"""The pre-commit hooks run the project's own tools from .venv and fetch nothing."""

from __future__ import annotations

import re
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
        if hook["language"] == "pygrep":  # a regular expression pre-commit applies itself
            continue
        assert hook["language"] == "system"
        assert hook["entry"].startswith(".venv/bin/")
        assert (REPO / hook["entry"].split()[0]).exists(), hook["entry"]


def test_the_commit_message_hook_refuses_long_or_multi_line_subjects() -> None:
    (hook,) = [hook for hook in hooks() if hook["id"] == "commit-subject"]
    assert hook["language"] == "pygrep" and hook["stages"] == ["commit-msg"]
    refused = re.compile(hook["entry"], re.MULTILINE)  # pygrep --multiline: a match refuses
    assert not refused.search("Say what in one line\n\nSay why, " + "at length " * 20 + "\n")
    assert not refused.search("x" * 72 + "\n# git's comments follow\n")
    assert refused.search("x" * 73 + "\n")
    assert refused.search("A subject\nthat goes on\n")
