"""filemem-api as a subprocess on loopback, with real Placement, and helpers that act as agents."""

from __future__ import annotations

import subprocess
import uuid as uuidlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from devtools.services import ReadyLine, ServiceProcess, python_module
from filemem.placement.client import PlacementClient
from filemem.placement.http import HttpTransport
from tests.functional.placement_fixtures import REPO, StandalonePlacement

TOKEN = "test-admin-token-" + "0123456789abcdef"
MEMORY_BACKING_FILE_TRAIT = "COMPUTE_MEM_BACKING_FILE"


def api_conf(
    state: Path,
    placement_url: str,
    database_url: str = "",
    token: str = TOKEN,
    default: str = "",
    api_options: str = "",
) -> str:
    """filemem-api's configuration; `default` and `api_options` are extra option lines of
    [DEFAULT] and [api]."""
    if "service_down_time" not in api_options:
        # The hosts these tests register never heartbeat: with the default 60 s, a module
        # slowed by a loaded machine saw its host 'down' (and the CLI tests failed on it).
        api_options += "service_down_time = 3600\n"
    return (
        f"[DEFAULT]\nstate_path = {state}\nhost = api-test\n{default}"
        f"[api]\nadmin_token = {token}\nbind_host = 127.0.0.1\nbind_port = 0\n"
        f"image_dirs = {state.parent / 'files'}\n{api_options}"
        f"[database]\nconnection = {database_url}\n"
        f"[placement]\nendpoint = {placement_url}\ntoken = admin\n"
    )


class ApiProcess(ServiceProcess):
    """`python -m filemem.cmd.api --config-file F`; prints its URL once it listens."""

    def __init__(self, state: Path, conf_text: str) -> None:
        self.state = state
        self.conf_path = state / "filemem.conf"
        self.conf_text = conf_text
        super().__init__(
            python_module("filemem.cmd.api", "--config-file", str(self.conf_path)),
            log_path=state / "api-stderr.log",
            cwd=REPO,
            ready=ReadyLine(r"^filemem-api listening on (http://\S+)$"),
        )

    @property
    def url(self) -> str:
        return self.ready_value

    def _write_conf(self) -> None:
        self.state.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.conf_text)

    def run(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """Run filemem-api to completion (e.g. --db-sync-only)."""
        self._write_conf()
        return subprocess.run(
            [*self.argv, *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, timeout: float | None = None) -> str:
        self._write_conf()
        return super().start(timeout)


@dataclass
class ApiEnv:
    """A running API with its own Placement: URLs, an authenticated client, Placement access."""

    url: str
    placement_url: str
    http: httpx.Client
    placement: PlacementClient
    files: Path
    # The filemem-api process; None when the API is served in the test process.
    api: ApiProcess | None = None

    def compute(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, f"/v2.1{path}", **kwargs)


def placement_client(url: str) -> PlacementClient:
    return PlacementClient(HttpTransport.with_token(url, "admin"))


def http_client(url: str, token: str = TOKEN) -> httpx.Client:
    return httpx.Client(base_url=url, timeout=60.0, headers={"X-Auth-Token": token})


@contextmanager
def api_env(
    state: Path, database_url: str = "", default: str = "", api_options: str = ""
) -> Iterator[ApiEnv]:
    """Standalone Placement + one filemem-api, both on loopback, stopped at the end.

    `default` and `api_options` are extra [DEFAULT] and [api] option lines for the API's
    configuration."""
    with StandalonePlacement(state / "placement") as placement_url:
        conf = api_conf(
            state / "api", placement_url, database_url, default=default, api_options=api_options
        )
        api = ApiProcess(state / "api", conf)
        api.start()
        try:
            with http_client(api.url) as http:
                files = state / "files"
                files.mkdir(exist_ok=True)
                yield ApiEnv(
                    api.url, placement_url, http, placement_client(placement_url), files, api
                )
        finally:
            api.stop()


# -- acting as agents and operators ------------------------------------------------------


def register_host(
    env: ApiEnv,
    host: str,
    *,
    memory_mb: int = 4096,
    vcpus: int = 8,
    disk_gb: int = 0,
    file_backed: bool = True,
    http: httpx.Client | None = None,
) -> str:
    """What an agent does: a Placement provider with inventory, then PUT its service."""
    provider = str(uuidlib.uuid4())
    env.placement.ensure_resource_provider(provider, host)
    inventory: dict[str, dict[str, Any]] = {
        "MEMORY_MB": {"total": memory_mb, "max_unit": memory_mb},
        "VCPU": {"total": vcpus, "max_unit": vcpus},
    }
    if disk_gb:
        inventory["DISK_GB"] = {"total": disk_gb, "max_unit": disk_gb}
    env.placement.set_inventories(provider, inventory)
    env.placement.set_traits(provider, [MEMORY_BACKING_FILE_TRAIT] if file_backed else [])
    response = (http or env.http).put(
        f"/filemem/v1/services/{host}",
        json={
            "binary": "filemem-compute",
            "provider_uuid": provider,
            "file_backed": file_backed,
            "file_backed_memory_mb": memory_mb if file_backed else 0,
        },
    )
    assert response.status_code == 200, response.text
    return provider


def make_flavor(
    env: ApiEnv,
    name: str,
    ram: int = 256,
    vcpus: int = 1,
    disk: int = 0,
    extra_specs: dict[str, str] | None = None,
) -> str:
    response = env.compute(
        "POST",
        "/flavors",
        json={"flavor": {"name": name, "ram": ram, "vcpus": vcpus, "disk": disk}},
    )
    assert response.status_code == 200, response.text
    flavor_id: str = response.json()["flavor"]["id"]
    if extra_specs:
        response = env.compute(
            "POST", f"/flavors/{flavor_id}/os-extra_specs", json={"extra_specs": extra_specs}
        )
        assert response.status_code == 200, response.text
    return flavor_id


def make_image(env: ApiEnv, name: str = "test-kernel") -> str:
    kernel = env.files / f"{name}.vmlinuz"
    kernel.write_bytes(b"\0" * 64)
    response = env.http.post(
        "/image/v2/images",
        json={
            "name": name,
            "kernel_path": str(kernel),
            "cmdline": "console=ttyS0",
        },
    )
    assert response.status_code == 201, response.text
    image_id: str = response.json()["id"]
    return image_id


def create_server(
    env: ApiEnv, name: str, flavor: str, image: str, http: httpx.Client | None = None
) -> str:
    response = (http or env.http).post(
        "/v2.1/servers", json={"server": {"name": name, "flavorRef": flavor, "imageRef": image}}
    )
    assert response.status_code == 202, response.text
    server_id: str = response.json()["server"]["id"]
    return server_id


def show_server(env: ApiEnv, server_id: str) -> dict[str, Any]:
    response = env.compute("GET", f"/servers/{server_id}")
    assert response.status_code == 200, response.text
    server: dict[str, Any] = response.json()["server"]
    return server


def agent_watch(
    env: ApiEnv, host: str, since: int | None = None, wait: float = 0
) -> dict[str, Any]:
    params: dict[str, Any] = {"wait": wait}
    if since is not None:
        params["since"] = since
    response = env.http.get(f"/filemem/v1/hosts/{host}/instances", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def agent_report(env: ApiEnv, server_id: str, **fields: Any) -> httpx.Response:
    return env.http.patch(f"/filemem/v1/instances/{server_id}", json=fields)


def agent_spawned(env: ApiEnv, server_id: str) -> None:
    response = agent_report(env, server_id, vm_state="active", power_state=1, task_state=None)
    assert response.status_code == 200, response.text


def agent_converge_deletes(env: ApiEnv, host: str) -> list[str]:
    """Destroy (confirm gone) every instance of the host that is asked to be deleted."""
    gone = []
    for instance in agent_watch(env, host)["instances"]:
        if instance["deleted_requested"]:
            response = env.http.post(f"/filemem/v1/instances/{instance['uuid']}/gone")
            assert response.status_code == 204, response.text
            gone.append(instance["uuid"])
    return gone
