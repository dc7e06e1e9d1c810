"""The cloud's control plane in the root namespace: PostgreSQL, Placement under gunicorn (2
workers), two filemem-api processes on one database, clouds.yaml; and each host's agent."""

from __future__ import annotations

import json
import os
import pwd
import secrets
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx

from devtools.cloud import namespaces, procs
from devtools.cloud.spec import CloudSpec, HostSpec
from devtools.postgres import OWNER, PostgresCluster, free_port
from devtools.test_image import TestImage

REPO = Path(__file__).resolve().parents[2]
API_COUNT = 2
PLACEMENT_WORKERS = 2
START_TIMEOUT_S = 90.0
CLOUD_NAME_IN_YAML = "filemem-cloud"
# As `filemem up` seeds its catalogue (filemem/cmd/up.py).
DEFAULT_FLAVORS = (("m1.tiny", 256, 1), ("m1.small", 512, 1), ("m1.medium", 1024, 2))
TEST_IMAGE_NAME = "filemem-test"
TEST_IMAGE_DIR = Path("/var/lib/filemem/images/test")

Progress = Callable[[str], None]


@dataclass
class ControlPlane:
    """Where the control plane of a cloud answers (also saved in cloud.json)."""

    postgres_port: int = 0
    placement_url: str = ""
    api_urls: tuple[str, ...] = ()

    def to_record(self) -> dict[str, object]:
        return {
            "postgres_port": self.postgres_port,
            "placement_url": self.placement_url,
            "api_urls": list(self.api_urls),
        }

    @classmethod
    def from_record(cls, record: dict[str, object]) -> ControlPlane:
        port = record.get("postgres_port", 0)
        urls = record.get("api_urls", [])
        return cls(
            int(port) if isinstance(port, int) else 0,
            str(record.get("placement_url", "")),
            tuple(str(u) for u in urls) if isinstance(urls, list) else (),
        )


def write_private(path: Path, text: str) -> None:
    """A file only root can read (tokens, config holding the token)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def token_path(spec: CloudSpec) -> Path:
    return spec.base / "token"


def token(spec: CloudSpec) -> str:
    return token_path(spec).read_text().strip()


def _python(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def _env() -> dict[str, str]:
    """Our own code first on the path (a worktree), as the calling command had it."""
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}


def _answers(url: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    return check


def start_postgres(spec: CloudSpec, plane: ControlPlane) -> PostgresCluster:
    root = spec.base / "postgres"
    cluster = PostgresCluster("filemem", root=root)
    owner = pwd.getpwnam(OWNER)
    root.mkdir(mode=0o700, exist_ok=True)
    os.chown(root, owner.pw_uid, owner.pw_gid)
    cluster.start()
    cluster.create_database("placement")
    plane.postgres_port = cluster.port
    return cluster


def start_placement(spec: CloudSpec, cluster: PostgresCluster, plane: ControlPlane) -> None:
    """Migrate, then placement.wsgi.api:application under gunicorn on the bridge address."""
    conf_dir = spec.base / "placement"
    conf_dir.mkdir(mode=0o755, exist_ok=True)
    # Placement 16 needs cursor.lastrowid, which psycopg 3 lacks: psycopg2 for Placement.
    connection = cluster.url_of("placement", driver="psycopg2")
    (conf_dir / "placement.conf").write_text(
        f"[placement_database]\nconnection = {connection}\n[api]\nauth_strategy = noauth2\n"
    )
    logs = spec.base / "logs"
    procs.run(
        _python("filemem.cmd.placement", "--database-connection", connection, "--db-sync-only"),
        timeout=120,
    )
    port = free_port(spec.gateway)
    procs.spawn(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(PLACEMENT_WORKERS),
            "--bind",
            f"{spec.gateway}:{port}",
            "--pid",
            str(conf_dir / "gunicorn.pid"),
            "placement.wsgi.api:application",
        ],
        log_path=logs / "placement.log",
        pid_file=spec.base / "pids" / "placement.pid",
        env={"OS_PLACEMENT_CONFIG_DIR": str(conf_dir)},
    )
    plane.placement_url = f"http://{spec.gateway}:{port}"
    procs.wait_for(
        "placement (gunicorn)",
        _answers(plane.placement_url + "/"),
        START_TIMEOUT_S,
        lambda: "\n" + procs.log_tail(logs / "placement.log"),
    )


def _api_conf(spec: CloudSpec, cluster: PostgresCluster, plane: ControlPlane, port: int) -> str:
    return (
        f"[DEFAULT]\nstate_path = {spec.base / 'api'}\n"
        f"[api]\nadmin_token = {token(spec)}\nbind_host = {spec.gateway}\nbind_port = {port}\n"
        "service_down_time = 20\n"
        f"[database]\nconnection = {cluster.url}\n"
        f"[placement]\nendpoint = {plane.placement_url}\ntoken = admin\n"
    )


def start_apis(spec: CloudSpec, cluster: PostgresCluster, plane: ControlPlane) -> None:
    """The shared database migrated once, then API_COUNT filemem-api processes on it."""
    write_private(token_path(spec), secrets.token_urlsafe(32) + "\n")
    (spec.base / "api").mkdir(mode=0o755, exist_ok=True)
    urls = []
    for index in range(1, API_COUNT + 1):
        port = free_port(spec.gateway)
        conf = spec.base / f"api{index}.conf"
        write_private(conf, _api_conf(spec, cluster, plane, port))
        if index == 1:
            procs.run(_python("filemem.cmd.api", "--config-file", str(conf), "--db-sync-only"))
        api_process(spec, index, start=True)
        urls.append(f"http://{spec.gateway}:{port}")
    plane.api_urls = tuple(urls)
    for index, url in enumerate(urls, 1):
        log = spec.base / "logs" / f"api{index}.log"
        procs.wait_for(
            f"filemem-api {index}",
            _answers(url + "/"),
            START_TIMEOUT_S,
            lambda log=log: "\n" + procs.log_tail(log),  # type: ignore[misc]
        )


def seed_catalogue(spec: CloudSpec, plane: ControlPlane) -> None:
    """The default flavors and the test image (the shared catalogue every host sees)."""
    url = plane.api_urls[0]
    with httpx.Client(headers={"X-Auth-Token": token(spec)}, timeout=30) as http:
        for name, ram, vcpus in DEFAULT_FLAVORS:
            body = {"flavor": {"name": name, "ram": ram, "vcpus": vcpus, "disk": 0}}
            http.post(f"{url}/v2.1/flavors", json=body).raise_for_status()
        image = TestImage(kernel=TEST_IMAGE_DIR / "vmlinuz", initrd=TEST_IMAGE_DIR / "initrd.img")
        if not image.kernel.is_file():
            raise procs.CloudError(
                f"no test image in {TEST_IMAGE_DIR}: run scripts/build-test-image first"
            )
        body_image = {
            "name": TEST_IMAGE_NAME,
            "kernel_path": str(image.kernel),
            "initrd_path": str(image.initrd),
            "cmdline": image.cmdline(),
        }
        http.post(f"{url}/image/v2/images", json=body_image).raise_for_status()


def api_process(spec: CloudSpec, index: int, *, start: bool = False) -> Path:
    """The pid file of filemem-api number `index`; with `start`, (re)start it first."""
    pid_file = spec.base / "pids" / f"api{index}.pid"
    if start:
        conf = spec.base / f"api{index}.conf"
        procs.spawn(
            _python("filemem.cmd.api", "--config-file", str(conf)),
            log_path=spec.base / "logs" / f"api{index}.log",
            pid_file=pid_file,
            env=_env(),
            cwd=REPO,
        )
    return pid_file


# Simulated hosts run TCG guests. With QEMU 7.2's TCG a live migration allowed only nova's
# first downtime step (live_migration_downtime / steps = 50 ms) intermittently left the guest
# hung on the destination (its vCPU spinning with interrupts off, a timer interrupt pending):
# 1 of 4 slow migrations by filemem's driver alone (1 of 2 through the API), none of 12 at
# 300 ms, QEMU's own default, which `virsh migrate` keeps (none of 31). So these hosts start at
# 300 ms (900 / 3 steps); the product's defaults stay nova's.
TCG_MIGRATION_OPTIONS = "live_migration_downtime = 900\nlive_migration_downtime_steps = 3\n"


def agent_conf(spec: CloudSpec, host: HostSpec, plane: ControlPlane) -> str:
    """The host's filemem.conf: its own libvirtd (qemu:///system inside its namespaces)."""
    address = spec.address_of(host)
    return (
        f"[DEFAULT]\nhost = {host.name}\nmy_ip = {address}\nstate_path = {spec.state_path}\n"
        "ram_allocation_ratio = 1.0\nshutdown_timeout = 2\nupdate_resources_interval = 10\n"
        "placement_retry_interval = 0.5\napi_watch_seconds = 5\n"
        f"api_endpoint = {','.join(plane.api_urls)}\n"
        f"api_credential_file = {credential_path(spec, host)}\n"
        f"[libvirt]\nconnection_uri = qemu:///system\nvirt_type = qemu\n"
        f"file_backed_memory = {host.file_backed_memory_mb}\n"
        f"live_migration_inbound_addr = {address}\n{TCG_MIGRATION_OPTIONS}"
        f"[placement]\nendpoint = {plane.placement_url}\ntoken = admin\n"
    )


def credential_path(spec: CloudSpec, host: HostSpec) -> Path:
    return spec.host_dir(host) / "agent.credential"


def issue_credential(spec: CloudSpec, host: HostSpec, plane: ControlPlane) -> None:
    """The host's agent holds a credential bound to its host, never the admin token (kept
    across agent restarts; issued once by the admin through the first API)."""
    path = credential_path(spec, host)
    if path.exists():
        return
    answer = httpx.post(
        f"{plane.api_urls[0]}/filemem/v1/hosts/{host.name}/credentials",
        headers={"X-Auth-Token": token(spec)},
        timeout=30,
    )
    if answer.status_code != 201:
        raise procs.CloudError(
            f"{host.name}: issuing its agent credential failed: {answer.status_code} "
            f"{answer.text[:300]}"
        )
    write_private(path, answer.json()["credential"]["secret"] + "\n")


def agent_pid_file(spec: CloudSpec, host: HostSpec) -> Path:
    return spec.base / "pids" / f"{host.name}-compute.pid"


def extra_conf_path(spec: CloudSpec, host: HostSpec) -> Path:
    """An optional second config file for the host's agent (read after filemem.conf, so its
    options win): tests put e.g. [libvirt] live_migration_bandwidth there, then restart it."""
    return spec.host_dir(host) / "extra.conf"


def start_agent(spec: CloudSpec, host: HostSpec, plane: ControlPlane) -> None:
    """filemem-compute inside the host's namespaces."""
    holder = namespaces.holder_pid(spec, host)
    if holder is None:
        raise procs.CloudError(f"{host.name}: its namespace holder is gone")
    issue_credential(spec, host, plane)
    conf = spec.host_dir(host) / "filemem.conf"
    write_private(conf, agent_conf(spec, host, plane))
    args = ["--config-file", str(conf)]
    if extra_conf_path(spec, host).exists():
        args += ["--config-file", str(extra_conf_path(spec, host))]
    procs.spawn(
        namespaces.enter(holder, _python("filemem.cmd.compute", *args)),
        log_path=spec.base / "logs" / f"{host.name}-compute.log",
        pid_file=agent_pid_file(spec, host),
        env=_env(),
        cwd=REPO,
    )


def registered_hosts(plane: ControlPlane, api_token: str) -> set[str]:
    """Hosts the API lists in os-hypervisors (any API that answers)."""
    for url in plane.api_urls:
        try:
            answer = httpx.get(
                f"{url}/v2.1/os-hypervisors", headers={"X-Auth-Token": api_token}, timeout=5
            )
            answer.raise_for_status()
        except httpx.HTTPError:
            continue
        return {hyp["hypervisor_hostname"] for hyp in answer.json()["hypervisors"]}
    return set()


def hosts_with_inventory(plane: ControlPlane) -> set[str]:
    """Providers in Placement that have their MEMORY_MB inventory already."""
    headers = {"X-Auth-Token": "admin", "OpenStack-API-Version": "placement 1.37"}
    found = set()
    try:
        with httpx.Client(base_url=plane.placement_url, headers=headers, timeout=5) as http:
            providers = http.get("/resource_providers").json()["resource_providers"]
            for provider in providers:
                answer = http.get(f"/resource_providers/{provider['uuid']}/inventories")
                if "MEMORY_MB" in answer.json().get("inventories", {}):
                    found.add(str(provider["name"]))
    except (httpx.HTTPError, ValueError, KeyError):
        return set()
    return found


def wait_for_agents(spec: CloudSpec, plane: ControlPlane, progress: Progress) -> None:
    """Every agent registered with the API and its inventory in Placement: guests can be
    scheduled to every host."""
    wanted = {host.name for host in spec.hosts}
    seen = -1
    api_token = token(spec)

    def all_registered() -> bool:
        nonlocal seen
        ready = registered_hosts(plane, api_token) & hosts_with_inventory(plane)
        count = len(wanted & ready)
        if count != seen:
            progress(f"waiting for {len(wanted)} agents to register ({count}/{len(wanted)})")
            seen = count
        return count == len(wanted)

    procs.wait_for(
        "agents",
        all_registered,
        START_TIMEOUT_S,
        lambda: "".join(
            f"\n--- {h.name} ---\n"
            + procs.log_tail(spec.base / "logs" / f"{h.name}-compute.log", 1500)
            for h in spec.hosts
        ),
    )


def write_clouds_yaml(spec: CloudSpec, plane: ControlPlane) -> Path:
    """clouds.yaml for the openstack CLI / openstacksdk against API 1 (as `filemem up` writes
    it; JSON is YAML, and the json module needs no third-party stubs)."""
    endpoint = plane.api_urls[0]
    cloud = {
        "auth_type": "admin_token",
        "auth": {"endpoint": f"{endpoint}/v2.1", "token": token(spec)},
        "identity_endpoint_override": f"{endpoint}/identity/v3",
        "compute_endpoint_override": f"{endpoint}/v2.1",
        "image_endpoint_override": f"{endpoint}/image",
        "network_endpoint_override": f"{endpoint}/network",
    }
    path = spec.base / "clouds.yaml"
    write_private(path, json.dumps({"clouds": {CLOUD_NAME_IN_YAML: cloud}}, indent=2) + "\n")
    return path


def stop_services(spec: CloudSpec) -> None:
    """Agents, APIs, Placement (pid files), then PostgreSQL."""
    pids = spec.base / "pids"
    for pid_file in sorted(pids.glob("*-compute.pid")):  # agent_pid_file()
        procs.stop_recorded(pid_file)
    for pid_file in sorted(pids.glob("api*.pid")):
        procs.stop_recorded(pid_file)
    procs.stop_recorded(pids / "placement.pid")
    if (spec.base / "postgres" / "data" / "postmaster.pid").exists():
        PostgresCluster.at(spec.base / "postgres").stop()
