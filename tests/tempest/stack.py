"""The cloud Tempest tests: Keystone, Placement, filemem-api and one filemem-compute on libvirt."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from devtools.services import ServiceProcess, python_module
from devtools.test_image import TestImage
from tests.functional.api_fixtures import ApiProcess
from tests.functional.keystone_api import keystone_api_conf
from tests.functional.keystone_fixture import KeystoneServer
from tests.functional.placement_fixtures import REPO, StandalonePlacement

HOST = "tempest-host"
# Room for Tempest's servers at concurrency 2: a few 128-256 MiB guests at once.
FILE_BACKED_MEMORY_MB = 6144
# The flavors tempest.conf names: flavor_ref, and flavor_ref_alt one step larger (resize).
FLAVORS = {"tempest1": (128, "1"), "tempest2": (192, "2")}
AGENT_READY_S = 120.0


@dataclass
class TempestCloud:
    """What tempest.conf needs to reach the cloud, and the processes to stop."""

    base: Path
    keystone: KeystoneServer
    api_url: str = ""
    image_ref: str = ""
    image_ref_alt: str = ""
    flavor_refs: list[str] = field(default_factory=list)
    agent: ServiceProcess | None = None
    api: ApiProcess | None = None
    placement: StandalonePlacement | None = None

    def admin_http(self) -> httpx.Client:
        token = self.keystone.token("admin")
        return httpx.Client(base_url=self.api_url, timeout=60.0, headers={"X-Auth-Token": token})

    def logs(self) -> str:
        """The tail of each service's log, for a run that went wrong."""
        procs: dict[str, ServiceProcess | None] = {
            "keystone": self.keystone.process,
            "placement": self.placement,
            "filemem-api": self.api,
            "filemem-compute": self.agent,
        }
        return "\n".join(
            f"--- {name} ---\n{proc.tail() if proc else '<not started>'}"
            for name, proc in procs.items()
        )


def _api_conf(state: Path, placement_url: str, keystone: KeystoneServer, images: Path) -> str:
    conf = keystone_api_conf(state, placement_url, keystone)
    # Resize runs on the server's own host, as nova's option allows (README: Resize).
    conf = conf.replace("[DEFAULT]\n", "[DEFAULT]\nallow_resize_to_same_host = true\n", 1)
    return conf.replace(f"image_dirs = {state.parent / 'files'}\n", f"image_dirs = {images}\n")


def _agent_conf(cloud: TempestCloud, credential: Path) -> Path:
    state = cloud.base / HOST
    state.mkdir(mode=0o755, exist_ok=True)
    conf = cloud.base / f"{HOST}.conf"
    assert cloud.placement is not None
    conf.write_text(
        f"[DEFAULT]\nhost = {HOST}\nstate_path = {state}\nram_allocation_ratio = 1.0\n"
        "shutdown_timeout = 5\nupdate_resources_interval = 5\nplacement_retry_interval = 0.5\n"
        f"api_endpoint = {cloud.api_url}\napi_watch_seconds = 2\n"
        f"api_credential_file = {credential}\n"
        f"[libvirt]\nvirt_type = qemu\nfile_backed_memory = {FILE_BACKED_MEMORY_MB}\n"
        # The one host is reached on loopback; os-hypervisors shows it as host_ip, which
        # nova's shape (and Tempest) holds to be an IP address, not the host's name.
        "live_migration_inbound_addr = 127.0.0.1\n"
        f"[placement]\nendpoint = {cloud.placement.url}\ntoken = admin\n"
    )
    return conf


def _start_agent(cloud: TempestCloud, http: httpx.Client) -> None:
    """filemem-compute holding only its host credential, as README's production set-up."""
    response = http.post(f"/filemem/v1/hosts/{HOST}/credentials")
    assert response.status_code == 201, response.text
    credential = cloud.base / f"{HOST}.credential"
    credential.write_text(response.json()["credential"]["secret"])
    credential.chmod(0o600)
    conf = _agent_conf(cloud, credential)
    cloud.agent = ServiceProcess(
        python_module("filemem.cmd.compute", "--config-file", str(conf)),
        log_path=cloud.base / "compute.log",
        cwd=REPO,
        name="filemem-compute",
        stop_timeout=60,
    )
    cloud.agent.start(60)
    deadline = time.monotonic() + AGENT_READY_S
    while time.monotonic() < deadline:
        hypervisors = http.get("/v2.1/os-hypervisors/detail").json()["hypervisors"]
        if any(h["hypervisor_hostname"] == HOST and h["memory_mb"] > 0 for h in hypervisors):
            return
        time.sleep(0.5)
    raise AssertionError(f"{HOST} did not report in {AGENT_READY_S} s\n{cloud.logs()}")


def _catalogue(cloud: TempestCloud, http: httpx.Client, image: TestImage) -> None:
    """Two images of the test guest (image_ref, image_ref_alt) and Tempest's two flavors."""
    refs = []
    for name in ("tempest-image", "tempest-image-alt"):
        body = {
            "name": name,
            "kernel_path": str(image.kernel),
            "initrd_path": str(image.initrd),
            "cmdline": image.cmdline(),
        }
        response = http.post("/image/v2/images", json=body)
        assert response.status_code == 201, response.text
        refs.append(str(response.json()["id"]))
    cloud.image_ref, cloud.image_ref_alt = refs
    for name, (ram, flavor_id) in FLAVORS.items():
        flavor: dict[str, Any] = {"name": name, "ram": ram, "vcpus": 1, "disk": 0}
        flavor["id"] = flavor_id
        response = http.post("/v2.1/flavors", json={"flavor": flavor})
        assert response.status_code == 200, response.text
        cloud.flavor_refs.append(str(response.json()["flavor"]["id"]))


@contextmanager
def tempest_cloud(base: Path, image: TestImage, keep: bool = False) -> Iterator[TempestCloud]:
    """Everything started under `base`; stopped, and its guests destroyed, at the end (and
    `base` removed, unless `keep`)."""
    base.mkdir(mode=0o755, parents=True, exist_ok=True)
    keystone = KeystoneServer(base / "keystone", threads=0)
    cloud = TempestCloud(base, keystone)
    with ExitStack() as stack:
        stack.callback(_destroy_guests, base, keep)
        keystone.start()
        stack.callback(keystone.stop)
        keystone.populate()
        cloud.placement = StandalonePlacement(base / "placement")
        stack.enter_context(cloud.placement)
        api_state = base / "api"
        conf = _api_conf(api_state, cloud.placement.url, keystone, image.kernel.parent)
        cloud.api = ApiProcess(api_state, conf)
        cloud.api_url = cloud.api.start()
        stack.callback(cloud.api.stop)
        keystone.register_filemem(cloud.api_url)
        with cloud.admin_http() as http:
            _start_agent(cloud, http)
            assert cloud.agent is not None
            stack.callback(cloud.agent.stop)
            _catalogue(cloud, http, image)
        yield cloud


def _destroy_guests(base: Path, keep: bool) -> None:
    """Guests a failed run left behind go with the cloud."""
    for path in (base / HOST).glob("instances/*"):
        name = f"instance-{path.name}"
        for verb in ("destroy", "undefine"):
            subprocess.run(
                ["virsh", "-c", "qemu:///system", verb, name], capture_output=True, check=False
            )
    if not keep:
        shutil.rmtree(base, ignore_errors=True)
