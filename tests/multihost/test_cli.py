"""`scripts/cloud` as a person runs it: up, refusal of a second up, status, down leaves nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devtools.cloud import hosts, namespaces
from tests.multihost.conftest import ROOT, cloud_name, require_namespaces, require_postgres

REPO = Path(__file__).resolve().parents[2]


def cloud(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(REPO / "scripts" / "cloud"), "--root", str(ROOT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.functional  # a simulated host with a libvirtd of its own in a namespace
def test_up_status_down(tmp_path: Path) -> None:
    require_namespaces()
    require_postgres()
    name = cloud_name()
    up = cloud("up", "1", "--name", name, "--host", "1:store_mb=512")
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        assert "host1: libvirtd up" in up.stdout
        assert "waiting for 1 agents to register (1/1)" in up.stdout
        assert f"OS_CLIENT_CONFIG_FILE={ROOT / name / 'clouds.yaml'}" in up.stdout
        assert (ROOT / name / "token").stat().st_mode & 0o777 == 0o600
        again = cloud("up", "1", "--name", name)
        assert again.returncode == 1 and "already up" in again.stderr
        status = cloud("status", name)
        assert status.returncode == 0, status.stderr
        assert "NOT RUNNING" not in status.stdout, status.stdout
        assert "file_backed_memory 448 MiB" in status.stdout
    finally:
        loaded = hosts.load(ROOT, name)
        down = cloud("down", name)
    assert down.returncode == 0, down.stdout + down.stderr
    assert loaded is not None
    spec = loaded[0]
    assert namespaces.leftovers(spec) == []
    assert not (ROOT / name).exists()
    assert cloud("status", name).returncode == 1
    assert cloud("down", name).returncode == 1


def test_bad_input_names_the_fault() -> None:
    bad = cloud("up", "2", "--name", "Bad/Name")
    assert bad.returncode == 1 and "cloud name" in bad.stderr
    bad = cloud("up", "2", "--name", cloud_name(), "--host", "3:file_backed=off")
    assert bad.returncode == 1 and "only 2 hosts" in bad.stderr
