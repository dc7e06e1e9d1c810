"""A real multi-process filemem cloud on loopback: standalone Placement, filemem-api, agents."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any

import httpx

from devtools.services import Ready, ReadyLine, ServiceProcess, python_module
from filemem.placement.client import PlacementClient
from filemem.placement.http import HttpTransport

SCRATCH = Path("/var/tmp/filemem-tests")
TOKEN = "test-token-" + uuidlib.uuid4().hex
REPO = Path(__file__).resolve().parents[2]
LISTENING = ReadyLine(r"listening on (http://\S+)")


class Cloud:
    """Processes started here are stopped by `close()`; logs stay in `base` until then."""

    def __init__(self) -> None:
        SCRATCH.mkdir(mode=0o755, parents=True, exist_ok=True)
        self.base = SCRATCH / f"cloud-{uuidlib.uuid4().hex[:8]}"
        self.base.mkdir(mode=0o755)
        self.procs: dict[str, ServiceProcess] = {}  # the latest process of each name
        self.placement_url = self._start(
            "placement",
            "filemem.cmd.placement",
            "--state-path",
            str(self.base / "placement"),
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            ready=LISTENING,
        )
        self.api_url = self._start_api()
        self.http = httpx.Client(
            base_url=f"{self.api_url}/v2.1", timeout=30, headers={"X-Auth-Token": TOKEN}
        )

    # -- processes ---------------------------------------------------------------------------

    def _start(self, name: str, module: str, *args: str, ready: Ready = None) -> str:
        """`python -m module args`, stderr appended to <base>/<name>.log; its ready value."""
        self.procs[name] = ServiceProcess(
            python_module(module, *args),
            log_path=self.base / f"{name}.log",
            ready=ready,
            cwd=REPO,
            name=name,
            stop_timeout=30,
        )
        return self.procs[name].start(60)

    def _common_conf(self) -> str:
        return (
            f"[placement]\nendpoint = {self.placement_url}\ntoken = admin\n"
            f"[api]\nadmin_token = {TOKEN}\nbind_host = 127.0.0.1\nbind_port = 0\n"
            "image_dirs = /var/lib/filemem/images\n"
            f"[database]\nconnection = sqlite:///{self.base}/filemem.sqlite\n"
        )

    def _agent_only_conf(self) -> str:
        """What a compute host holds: Placement's endpoint, neither the admin token nor the
        database."""
        return f"[placement]\nendpoint = {self.placement_url}\ntoken = admin\n"

    def _start_api(self) -> str:
        conf = self.base / "api.conf"
        conf.write_text(f"[DEFAULT]\nstate_path = {self.base / 'api'}\n" + self._common_conf())
        return self._start("api", "filemem.cmd.api", "--config-file", str(conf), ready=LISTENING)

    def agent_conf(
        self, host: str, file_backed_memory_mb: int, credential_file: Path | None = None
    ) -> Path:
        """The agent's configuration: with the admin token as [DEFAULT] api_token, or with
        only the host's credential file (and then no admin token anywhere in it)."""
        state = self.base / host
        state.mkdir(mode=0o755, exist_ok=True)
        conf = self.base / f"{host}.conf"
        if credential_file is None:
            auth, rest = f"api_token = {TOKEN}\n", self._common_conf()
        else:
            auth, rest = f"api_credential_file = {credential_file}\n", self._agent_only_conf()
        conf.write_text(
            f"[DEFAULT]\nhost = {host}\nstate_path = {state}\nram_allocation_ratio = 1.0\n"
            "shutdown_timeout = 2\nupdate_resources_interval = 5\nplacement_retry_interval = 0.5\n"
            f"api_endpoint = {self.api_url}\napi_watch_seconds = 2\n{auth}"
            f"[libvirt]\nvirt_type = qemu\nfile_backed_memory = {file_backed_memory_mb}\n" + rest
        )
        return conf

    def start_agent(
        self, host: str, file_backed_memory_mb: int, credential_file: Path | None = None
    ) -> None:
        conf = self.base / f"{host}.conf"
        if not conf.exists():
            self.agent_conf(host, file_backed_memory_mb, credential_file)
        self._start(host, "filemem.cmd.compute", "--config-file", str(conf))
        # Registered is not enough: until its first sync the host has no inventory in
        # Placement and a boot would find no valid host.
        self.wait_for(lambda: self._reported(host), f"agent {host} registered and reported", 60)

    def _reported(self, host: str) -> bool:
        hypervisor = self.hypervisor(host)
        return hypervisor is not None and int(hypervisor["memory_mb"]) > 0

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        self.procs[name].stop(60, sig=sig)

    def close(self) -> None:
        for proc in self.procs.values():
            proc.stop()
        self.http.close()
        self._destroy_guests()
        shutil.rmtree(self.base, ignore_errors=True)

    def _destroy_guests(self) -> None:
        """Guests the agents left running (a test that failed half-way) go with the cloud."""
        for path in self.base.glob("*/instances/*"):
            name = f"instance-{path.name}"
            for verb in ("destroy", "undefine"):
                subprocess.run(
                    ["virsh", "-c", "qemu:///system", verb, name], capture_output=True, check=False
                )

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}.log ---\n{proc.tail() or '<no log>'}" for name, proc in self.procs.items()
        )

    # -- API helpers -------------------------------------------------------------------------

    def wait_for(self, done: Any, what: str, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what}\n{self.logs()}")

    def hypervisor(self, host: str) -> dict[str, Any] | None:
        for hyp in self.http.get("/os-hypervisors/detail").json()["hypervisors"]:
            if hyp["hypervisor_hostname"] == host:
                return dict(hyp)
        return None

    def server(self, uuid: str) -> dict[str, Any] | None:
        response = self.http.get(f"/servers/{uuid}")
        if response.status_code == 404:
            return None
        response.raise_for_status()
        return dict(response.json()["server"])

    def wait_status(self, uuid: str, status: str, timeout: float = 120) -> dict[str, Any]:
        def reached() -> bool:
            server = self.server(uuid)
            return bool(
                server and server["status"] == status and not server.get("OS-EXT-STS:task_state")
            )

        self.wait_for(reached, f"server {uuid} {status}", timeout)
        server = self.server(uuid)
        assert server is not None
        return server

    def flavor(self, name: str, ram: int, extra_specs: dict[str, str] | None = None) -> str:
        flavor = self.http.post(
            "/flavors", json={"flavor": {"name": name, "ram": ram, "vcpus": 1, "disk": 0}}
        ).json()["flavor"]
        if extra_specs:
            self.http.post(
                f"/flavors/{flavor['id']}/os-extra_specs", json={"extra_specs": extra_specs}
            ).raise_for_status()
        return str(flavor["id"])

    def test_image(self, kernel: Path, initrd: Path, cmdline: str) -> str:
        response = self.http.post(
            f"{self.api_url}/image/v2/images",
            json={
                "name": f"test-{uuidlib.uuid4().hex[:6]}",
                "kernel_path": str(kernel),
                "initrd_path": str(initrd),
                "cmdline": cmdline,
            },
        )
        response.raise_for_status()
        return str(response.json()["id"])

    def create(self, name: str, flavor: str, image: str) -> str:
        response = self.http.post(
            "/servers", json={"server": {"name": name, "flavorRef": flavor, "imageRef": image}}
        )
        assert response.status_code == 202, response.text
        return str(response.json()["server"]["id"])

    def placement(self) -> PlacementClient:
        return PlacementClient(HttpTransport.with_token(self.placement_url, "admin"))


def domain_exists(uuid: str) -> bool:
    result = subprocess.run(
        ["virsh", "-c", "qemu:///system", "domstate", f"instance-{uuid}"],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0


def memory_dirs(uuid: str) -> list[Path]:
    """libvirt truncates the domain name in the directory: match on the uuid's first part."""
    prefix = f"instance-{uuid}"[:20]
    return [
        p
        for p in Path("/var/lib/libvirt/qemu/ram").glob("*-*")
        if p.name.split("-", 1)[1] == prefix
    ]
