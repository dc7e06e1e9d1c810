"""`functional` means "needs libvirtd": it marks such tests, wherever they live, and no others."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TARGETS = (
    "tests/functional/test_api_basic.py",
    "tests/functional/test_guests.py",
    "tests/functional/test_cli.py",
    "tests/multihost/test_hosts.py",
    "tests/unit/test_backing_store_inspect.py",
)
# A plugin for the collecting pytest: one line per test, its node id and whether it is marked.
PLUGIN = """
def pytest_collection_finish(session):
    for item in session.items:
        marks = [m for m in ("functional", "root") if item.get_closest_marker(m)]
        print("MARK", "+".join(marks) or "unit", item.nodeid)
"""


@pytest.fixture(scope="module")
def marks(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Node id -> functional or unit, by one collection (nothing runs, no daemon starts)."""
    plugins = tmp_path_factory.mktemp("plugin")
    (plugins / "marks_plugin.py").write_text(PLUGIN)
    done = subprocess.run(
        [
            sys.executable,
            *("-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"),
            *("-p", "marks_plugin", *TARGETS),
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": f"{REPO}:{plugins}"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = [
        line.split(maxsplit=2) for line in done.stdout.splitlines() if line.startswith("MARK ")
    ]
    return {nodeid: mark for _, mark, nodeid in lines}


def of(marks: dict[str, str], module: str) -> set[str]:
    return {mark for nodeid, mark in marks.items() if nodeid.startswith(module + "::")}


def test_api_tests_without_libvirtd_are_not_functional(marks: dict[str, str]) -> None:
    # An API over real HTTP with a real Placement and simulated agents: no libvirtd.
    assert of(marks, "tests/functional/test_api_basic.py") == {"unit"}


def test_tests_that_ask_for_libvirtd_are_functional(marks: dict[str, str]) -> None:
    # Every test there boots guests through the libvirtd fixture.
    assert of(marks, "tests/functional/test_guests.py") == {"functional"}


def test_a_module_mixing_both_is_marked_test_by_test(marks: dict[str, str]) -> None:
    module = "tests/functional/test_cli.py"
    assert marks[f"{module}::test_invalid_option_value_is_refused_naming_it"] == "unit"
    assert marks[f"{module}::test_host_check_passes_on_a_good_host"] == "functional"


def test_multihost_tests_are_functional(marks: dict[str, str]) -> None:
    # Their simulated hosts each start a libvirtd of their own in a namespace.
    assert of(marks, "tests/multihost/test_hosts.py") == {"functional"}


def test_root_alone_is_not_functional(marks: dict[str, str]) -> None:
    # Mounting a tmpfs needs root, not libvirtd: marked root, run by -m "not functional".
    module = "tests/unit/test_backing_store_inspect.py"
    assert marks[f"{module}::test_tmpfs_store_has_no_rotational_flag"] == "root"
