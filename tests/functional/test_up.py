"""`filemem up` end to end: a real guest through the API, host show through the one Placement
writer, the working set in the CLI, the metrics and the admin view of the server."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.services import ReadyFile, ServiceProcess
from devtools.test_image import TestImage
from filemem.compute import metrics
from tests.functional.conftest import REPO

FILEMEM = str(REPO / ".venv" / "bin" / "filemem")


class Up:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.conf = state / "filemem.conf"
        data = json.loads((state / "client.json").read_text())
        self.endpoint: str = data["endpoint"]
        self.token: str = data["token"]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [FILEMEM, "--config-file", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json").stdout)


@pytest.fixture
def up(libvirtd: None, test_image: TestImage, state_path: Path) -> Iterator[Up]:
    conf = state_path / "filemem.conf"
    conf.write_text(
        f"[DEFAULT]\nstate_path = {state_path}\nram_allocation_ratio = 1.0\n"
        "shutdown_timeout = 2\nupdate_resources_interval = 2\n"
        "[libvirt]\nvirt_type = qemu\nfile_backed_memory = 1024\n"
        "[api]\nbind_host = 127.0.0.1\nbind_port = 0\n"
    )
    service = ServiceProcess(
        [FILEMEM, "--config-file", str(conf), "up", "--ready-file", str(state_path / "ready")],
        log_path=state_path / "up.log",
        cwd=REPO,
        ready=ReadyFile(state_path / "ready"),
    )
    service.start(timeout=120)
    running = Up(state_path)
    try:
        yield running
    finally:
        for server in running.json("server", "list"):
            running.cli("server", "delete", server["id"], "--wait")
        service.stop()


def test_a_guest_through_up_shows_where_its_memory_is(up: Up) -> None:
    assert oct((up.state / "client.json").stat().st_mode & 0o777) == "0o600"
    server = up.json(
        "server", "create", "up-1", "--flavor", "m1.tiny", "--image", "filemem-test", "--wait"
    )
    assert server["status"] == "ACTIVE"

    # host show reads Placement through the running `filemem up`, its only writer.
    view = up.json("host", "show")
    assert view["placement"].endswith("/placement")
    assert view["inventories"]["MEMORY_MB"]["total"] == 1024
    [row] = view["guests"]
    assert row["status"] == "ok" and row["allocation"]["MEMORY_MB"] == 256
    [working] = view["working_set"]["guests"]
    assert working["uuid"] == server["id"] and working["store_bytes"] == 256 * 2**20
    assert 0 < working["resident_bytes"] <= 256 * 2**20

    # The proxy is behind the admin token like every other route.
    anonymous = httpx.get(f"{up.endpoint}/placement/resource_providers", timeout=10)
    assert anonymous.status_code == 401

    # Metrics and the admin view follow within a resource cycle or two.
    deadline = time.monotonic() + 30
    shown: dict[str, Any] = {}
    while time.monotonic() < deadline:
        shown = up.json("server", "show", server["id"])
        if "filemem:memory_usage" in shown:
            break
        time.sleep(1)
    usage = shown["filemem:memory_usage"]
    assert usage["nominal_bytes"] == 256 * 2**20 and usage["resident_bytes"] > 0
    samples = metrics.parse((up.state / "metrics.prom").read_text())
    resident = [
        v
        for k, v in samples.items()
        if k.startswith("filemem_guest_memory_resident_bytes") and server["id"] in k
    ]
    assert resident and resident[0] > 0
    assert samples["filemem_memory_mb_used"] == 256

    # The agent of `filemem up` runs with its host's credential, not the admin token.
    secret_file = up.state / "agent_credential"
    assert secret_file.stat().st_mode & 0o777 == 0o600
    [credential] = up.json("host", "credential", "list", view["host"])
    assert credential["revoked_at"] is None and credential["last_used_at"] is not None
    as_agent = {"X-Auth-Token": secret_file.read_text().strip()}
    refused = httpx.get(f"{up.endpoint}/v2.1/servers", headers=as_agent, timeout=10)
    assert refused.status_code == 403, refused.text
