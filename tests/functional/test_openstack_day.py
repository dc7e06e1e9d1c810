"""An operator's day with the `openstack` CLI against `filemem up`: a real guest through every
server action the Compute API serves, and the read-only resources around it.

Each command runs as a subprocess with the clouds.yaml `filemem up` writes, at the microversion
the CLI negotiates (filemem's maximum), exactly as a person would type it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.services import ReadyFile, ServiceProcess
from devtools.test_image import TestImage
from tests.functional.conftest import REPO

FILEMEM = str(REPO / ".venv" / "bin" / "filemem")
OPENSTACK = str(REPO / ".venv" / "bin" / "openstack")
PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDtXKE1rBkL3H2vkHX8iRU9ovg5sC9+0Mg0xqrTa1Q7y day@test"
)


class Cloud:
    def __init__(self, state: Path) -> None:
        self.state = state
        self.environ = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        self.environ.update(OS_CLIENT_CONFIG_FILE=str(state / "clouds.yaml"), OS_CLOUD="filemem")

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [OPENSTACK, *args],
            env=self.environ,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def __call__(self, *args: str) -> str:
        result = self.run(*args)
        assert result.returncode == 0, (args, result.stdout, result.stderr)
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self(*args, "-f", "json"))

    def status(self, server: str) -> str:
        return str(self.json("server", "show", server)["status"])

    def wait_status(self, server: str, wanted: str, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        shown: dict[str, Any] = {}
        while time.monotonic() < deadline:
            shown = self.json("server", "show", server)
            if shown["status"] == wanted:
                return shown
            assert shown["status"] != "ERROR", shown
            time.sleep(1)
        raise AssertionError(f"{server} is {shown.get('status')}, not {wanted}: {shown}")


@pytest.fixture(scope="module")
def cloud(
    libvirtd: None, test_image: TestImage, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cloud]:
    state = Path("/var/tmp/filemem-tests") / f"day-{os.getpid()}"
    state.mkdir(parents=True, exist_ok=True)
    conf = state / "filemem.conf"
    conf.write_text(
        f"[DEFAULT]\nstate_path = {state}\nram_allocation_ratio = 1.0\n"
        "shutdown_timeout = 5\nupdate_resources_interval = 2\n"
        "[libvirt]\nvirt_type = qemu\nfile_backed_memory = 1536\n"
        "[api]\nbind_host = 127.0.0.1\nbind_port = 0\n"
    )
    service = ServiceProcess(
        [FILEMEM, "--config-file", str(conf), "up", "--ready-file", str(state / "ready")],
        log_path=state / "up.log",
        cwd=REPO,
        ready=ReadyFile(state / "ready"),
    )
    service.start(timeout=120)
    running = Cloud(state)
    try:
        yield running
    finally:
        for server in running.json("server", "list"):
            running.run("server", "delete", "--wait", server["ID"])
        service.stop()
        subprocess.run(["rm", "-rf", str(state)], check=False)


def test_catalogue_and_a_server_through_every_action(cloud: Cloud) -> None:
    assert "m1.tiny" in cloud("flavor", "list", "-f", "value", "-c", "Name")
    cloud("flavor", "create", "day.big", "--ram", "384", "--vcpus", "1", "--disk", "0")
    assert cloud.json("image", "show", "filemem-test")["name"] == "filemem-test"

    created = cloud.json(
        "server",
        "create",
        "--flavor",
        "m1.tiny",
        "--image",
        "filemem-test",
        "--no-network",
        "--property",
        "role=day",
        "--wait",
        "vm1",
    )
    assert created["status"] == "ACTIVE"
    listing = cloud("server", "list", "--long", "-f", "value", "-c", "Name", "-c", "Image Name")
    assert "vm1 filemem-test" in listing

    cloud(
        "server",
        "set",
        "--name",
        "vm1b",
        "--description",
        "the day's guest",
        "--property",
        "owner=ops",
        "vm1",
    )
    shown = cloud.json("server", "show", "vm1b")
    assert shown["description"] == "the day's guest"
    assert shown["properties"] == {"role": "day", "owner": "ops"}
    cloud("server", "unset", "--property", "owner", "vm1b")
    assert cloud.json("server", "show", "vm1b")["properties"] == {"role": "day"}

    console = cloud("console", "log", "show", "--lines", "20", "vm1b")
    assert console.strip(), "the serial console log is empty"

    cloud("server", "stop", "vm1b")
    cloud.wait_status("vm1b", "SHUTOFF")
    cloud("server", "start", "vm1b")
    cloud.wait_status("vm1b", "ACTIVE")
    cloud("server", "reboot", "--soft", "--wait", "vm1b")
    cloud("server", "reboot", "--hard", "--wait", "vm1b")
    cloud("server", "pause", "vm1b")
    cloud.wait_status("vm1b", "PAUSED")
    cloud("server", "unpause", "vm1b")
    cloud.wait_status("vm1b", "ACTIVE")
    cloud("server", "suspend", "vm1b")
    cloud.wait_status("vm1b", "SUSPENDED")
    cloud("server", "resume", "vm1b")
    cloud.wait_status("vm1b", "ACTIVE")

    cloud("server", "lock", "vm1b")
    assert cloud.json("server", "show", "vm1b")["locked"] is True
    cloud("server", "unlock", "vm1b")

    cloud("server", "rebuild", "--image", "filemem-test", "--wait", "vm1b")
    assert cloud.status("vm1b") == "ACTIVE"

    cloud("server", "resize", "--flavor", "day.big", "--wait", "vm1b")
    assert cloud.status("vm1b") == "VERIFY_RESIZE"
    cloud("server", "resize", "confirm", "vm1b")
    shown = cloud.wait_status("vm1b", "ACTIVE")
    assert shown["flavor"].startswith("day.big")
    cloud("server", "resize", "--flavor", "m1.tiny", "--wait", "vm1b")
    cloud("server", "resize", "revert", "vm1b")
    shown = cloud.wait_status("vm1b", "ACTIVE")
    assert shown["flavor"].startswith("day.big")
    migrations = cloud.json("server", "migration", "list", "--server", "vm1b")
    assert sorted(m["Status"] for m in migrations) == ["confirmed", "reverted"]

    cloud("server", "dump", "create", "vm1b")
    events = cloud.json("server", "event", "list", "vm1b")
    actions = [e["Action"] for e in events]
    for action in (
        "create",
        "stop",
        "start",
        "reboot",
        "pause",
        "unpause",
        "suspend",
        "resume",
        "lock",
        "unlock",
        "rebuild",
        "resize",
        "confirmResize",
        "revertResize",
        "trigger_crash_dump",
    ):
        assert action in actions, (action, actions)
    rebuild = next(e for e in events if e["Action"] == "rebuild")
    detail = cloud.json("server", "event", "show", "vm1b", rebuild["Request ID"])
    assert [e["event"] for e in detail["events"]] == ["compute_rebuild_instance"]
    assert detail["events"][0]["result"] == "Success"

    cloud("server", "delete", "--wait", "vm1b")
    assert "vm1b" not in cloud("server", "list", "-f", "value", "-c", "Name")


def test_multi_create_and_the_resources_around_servers(cloud: Cloud, tmp_path: Path) -> None:
    cloud(
        "server",
        "create",
        "--flavor",
        "m1.tiny",
        "--image",
        "filemem-test",
        "--no-network",
        "--min",
        "2",
        "--max",
        "2",
        "multi",
    )
    names = cloud("server", "list", "-f", "value", "-c", "Name").split()
    assert sorted(n for n in names if n.startswith("multi")) == ["multi-1", "multi-2"]
    for name in ("multi-1", "multi-2"):
        cloud.wait_status(name, "ACTIVE")

    key = tmp_path / "day.pub"
    key.write_text(PUBLIC_KEY + "\n")
    cloud("keypair", "create", "--public-key", str(key), "day-key")
    assert cloud.json("keypair", "show", "day-key")["name"] == "day-key"
    assert "day-key" in cloud("keypair", "list", "-f", "value", "-c", "Name")
    cloud("keypair", "delete", "day-key")

    hypervisors = cloud.json("hypervisor", "list")
    assert len(hypervisors) == 1
    cloud("hypervisor", "show", hypervisors[0]["Hypervisor Hostname"])
    stats = cloud.json("hypervisor", "stats", "show")
    assert stats["count"] == 1 and stats["running_vms"] == 2
    services = cloud.json("compute", "service", "list")
    assert [s["State"] for s in services] == ["up"]
    assert "nova" in cloud("availability", "zone", "list", "--compute")
    assert cloud("limits", "show", "--absolute")
    assert cloud("usage", "list")
    # With admin_token auth the CLI knows no current project: name it (Keystone auth will).
    assert "instances" in cloud("quota", "show", "--compute", "filemem")
    assert cloud.json("server", "migration", "list") is not None

    for name in ("multi-1", "multi-2"):
        cloud("server", "delete", "--wait", name)
