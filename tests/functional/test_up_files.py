"""`filemem up`'s state directory keeps secrets from other local users: the databases (they
hold console output), the tokens and the client files are the owner's only, no log carries the
admin token, and a token seen in an old run's files stops working at the next run."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devtools.services import ReadyFile, ServiceProcess, python_module
from devtools.test_image import TestImage
from tests.functional.conftest import REPO

# Never readable by others; the tokens and databases the owner's alone.
SECRETS = (
    "admin_token",
    "agent_credential",
    "client.json",
    "clouds.yaml",
    "filemem.sqlite",
    "placement.sqlite",
)
# The textfile for node_exporter's textfile collector is meant for another user (no secrets).
SHARED = {"metrics.prom"}


class UpRun:
    """One `filemem up` on `state`, its configuration and captured output outside `state`."""

    def __init__(self, workdir: Path) -> None:
        self.state = workdir / "state"
        self.conf = workdir / "filemem.conf"
        self.log = workdir / "up.log"
        self.conf.write_text(
            f"[DEFAULT]\nstate_path = {self.state}\nram_allocation_ratio = 1.0\n"
            "update_resources_interval = 2\n"
            "[libvirt]\nvirt_type = qemu\nfile_backed_memory = 1024\n"
            "[api]\nbind_host = 127.0.0.1\nbind_port = 0\n"
        )
        self.service: ServiceProcess | None = None
        self.stdout: list[str] = []

    def start(self) -> dict[str, str]:
        """A new `filemem up` (one start per ServiceProcess); the client file it wrote."""
        ready = self.log.parent / "ready"
        ready.unlink(missing_ok=True)
        self.service = ServiceProcess(
            python_module(
                "filemem.cmd.cli", "--config-file", str(self.conf), "up", "--ready-file", str(ready)
            ),
            log_path=self.log,
            cwd=REPO,
            ready=ReadyFile(ready),
        )
        self.service.start(timeout=120)
        client: dict[str, str] = json.loads((self.state / "client.json").read_text())
        return client

    def stop(self) -> None:
        if self.service is not None:
            self.service.stop()
            self.stdout += self.service.output()
            self.service = None

    def printed(self) -> str:
        """Everything every run printed: stdout and the stderr log."""
        current = self.service.output() if self.service is not None else []
        return "\n".join([*self.stdout, *current, self.log.read_text()])


@pytest.fixture
def run(libvirtd: None, test_image: TestImage, state_path: Path) -> Iterator[UpRun]:
    running = UpRun(state_path)
    try:
        yield running
    finally:
        running.stop()


def world_access(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode) & 0o007


def test_the_state_directory_keeps_its_secrets_to_its_owner(run: UpRun) -> None:
    client = run.start()
    token = client["token"]
    # QEMU (another user) must still reach guests' files below it: search, never list.
    assert stat.S_IMODE(run.state.stat().st_mode) == 0o711
    for name in SECRETS:
        assert stat.S_IMODE((run.state / name).stat().st_mode) == 0o600, name
    # SQLite gives its -wal and -shm the database's mode, while the API has them open.
    wal = [p for p in run.state.iterdir() if p.name.endswith(("-wal", "-shm"))]
    assert wal, sorted(p.name for p in run.state.iterdir())
    readable = [
        str(p) for p in run.state.rglob("*") if p.name not in SHARED and world_access(p) & 0o006
    ]
    assert readable == []
    printed = run.printed()
    assert token not in printed
    assert str(run.state / "client.json") in printed


def test_each_run_has_a_new_admin_token(run: UpRun) -> None:
    first = run.start()["token"]
    run.stop()
    client = run.start()
    assert client["token"] != first
    endpoint = client["endpoint"]
    with httpx.Client(base_url=endpoint, timeout=30) as http:
        assert http.get("/v2.1/servers", headers={"X-Auth-Token": first}).status_code == 401
        fresh = http.get("/v2.1/servers", headers={"X-Auth-Token": client["token"]})
        assert fresh.status_code == 200, fresh.text
    assert first not in run.printed() and client["token"] not in run.printed()
