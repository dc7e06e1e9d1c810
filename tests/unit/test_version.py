"""One version string: pyproject.toml's, read through the installed metadata."""

from __future__ import annotations

import re
import tomllib
from importlib import metadata
from pathlib import Path

import filemem

REPO = Path(__file__).resolve().parents[2]


def pyproject_version() -> str:
    version: str = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    return version


def test_the_package_reports_the_installed_version() -> None:
    assert filemem.__version__ == metadata.version("filemem")


def test_the_version_is_written_once() -> None:
    # Any other copy (a literal in the package) drifts at the next release.
    literal = re.compile(r"""["']""" + re.escape(pyproject_version()) + r"""["']""")
    copies = [
        str(path.relative_to(REPO))
        for path in sorted((REPO / "filemem").rglob("*.py"))
        if literal.search(path.read_text())
    ]
    assert copies == []
