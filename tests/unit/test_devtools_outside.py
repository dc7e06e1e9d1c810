"""devtools/ lives beside tests/ and bench/, outside the installed filemem package."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import filemem
from devtools.cloud import control_plane

REPO = Path(__file__).resolve().parents[2]


def test_devtools_is_not_part_of_the_filemem_package() -> None:
    assert not (Path(filemem.__file__).parent / "devtools").exists()
    assert (REPO / "devtools" / "memcheck.c").is_file()


def test_the_cloud_launcher_finds_the_checkout() -> None:
    # It starts its services with the checkout on PYTHONPATH and as their working directory.
    assert control_plane.REPO == REPO


def test_the_counted_api_runs_as_a_module_from_the_checkout() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "devtools.counted_api", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "filemem-api" in done.stdout
