"""A whole simulated cloud: up (hosts, control plane, agents), down, status, how to reach it."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devtools.cloud import control_plane, hosts, libvirt_host, namespaces, procs
from devtools.cloud.control_plane import ControlPlane
from devtools.cloud.procs import CloudError
from devtools.cloud.spec import DEFAULT_ROOT, CloudSpec, HostSpec, build_spec

Progress = Callable[[str], None]


@dataclass
class Cloud:
    """A cloud that is up: its spec and where its control plane answers."""

    spec: CloudSpec
    plane: ControlPlane

    @property
    def token(self) -> str:
        return control_plane.token(self.spec)

    @property
    def clouds_yaml(self) -> Path:
        return self.spec.base / "clouds.yaml"

    @property
    def log_dir(self) -> Path:
        return self.spec.base / "logs"


def up(
    name: str,
    count: int,
    overrides: dict[int, HostSpec] | None = None,
    *,
    root: Path = DEFAULT_ROOT,
    progress: Progress = print,
) -> Cloud:
    """Bring a cloud up; on any failure everything started so far is taken down again."""
    started = time.monotonic()
    with hosts.root_lock(root):
        if (root / name / hosts.RECORD).exists():
            raise CloudError(
                f"cloud {name!r} is already up (state in {root / name}); "
                f"`scripts/cloud down {name}` first"
            )
        spec = build_spec(name, count, hosts.free_subnet(root), overrides, root)
        if spec.base.exists():
            shutil.rmtree(spec.base)  # what a failed down left; the record says it is not up
        spec.base.mkdir(mode=0o755, parents=True)
        hosts.save(spec)
    plane = ControlPlane()
    try:
        hosts.up_hosts(spec, progress)
        cluster = control_plane.start_postgres(spec, plane)
        progress(f"postgresql up on 127.0.0.1:{cluster.port}")
        control_plane.start_placement(spec, cluster, plane)
        progress(f"placement up at {plane.placement_url} (gunicorn, 2 workers)")
        control_plane.start_apis(spec, cluster, plane)
        progress(f"filemem-api up at {', '.join(plane.api_urls)}")
        hosts.save(spec, plane.to_record())
        control_plane.seed_catalogue(spec, plane)
        for host in spec.hosts:
            control_plane.start_agent(spec, host, plane)
        control_plane.wait_for_agents(spec, plane, progress)
        control_plane.write_clouds_yaml(spec, plane)
    except BaseException:
        progress(f"bringing cloud {name} up failed: taking it down again")
        down(name, root=root, progress=progress)
        raise
    progress(f"cloud {name} up in {time.monotonic() - started:.1f} s")
    return Cloud(spec, plane)


def load(name: str, root: Path = DEFAULT_ROOT) -> Cloud | None:
    loaded = hosts.load(root, name)
    if loaded is None:
        return None
    spec, record = loaded
    return Cloud(spec, ControlPlane.from_record(record))


def down(name: str, *, root: Path = DEFAULT_ROOT, progress: Progress = print) -> bool:
    """Stop everything the cloud started and remove its state; False when there was none."""
    with hosts.root_lock(root):
        cloud = load(name, root)
        if cloud is None:
            return False
        spec = cloud.spec
        control_plane.stop_services(spec)
        progress("control plane stopped")
        hosts.down_hosts(spec, progress)
        shutil.rmtree(spec.base, ignore_errors=True)
    progress(f"cloud {name} is down")
    return True


def restart_agent(cloud: Cloud, host: HostSpec) -> None:
    """Stop the host's filemem-compute (SIGTERM) and start it again (re-reading extra.conf)."""
    procs.stop_recorded(control_plane.agent_pid_file(cloud.spec, host))
    control_plane.start_agent(cloud.spec, host, cloud.plane)


def names(root: Path = DEFAULT_ROOT) -> list[str]:
    return sorted(p.parent.name for p in root.glob(f"*/{hosts.RECORD}"))


def _state(running: bool) -> str:
    return "running" if running else "NOT RUNNING"


def status_lines(cloud: Cloud) -> list[str]:
    """One line per process or host: whether it runs."""
    spec = cloud.spec
    pids = spec.base / "pids"
    lines = [f"cloud {spec.name}: bridge {spec.bridge} {spec.gateway}/24, state in {spec.base}"]
    lines.append(
        f"  placement {cloud.plane.placement_url}: "
        f"{_state(procs.recorded_pid(pids / 'placement.pid') is not None)}"
    )
    for index, url in enumerate(cloud.plane.api_urls, 1):
        running = procs.recorded_pid(pids / f"api{index}.pid") is not None
        lines.append(f"  filemem-api {index} {url}: {_state(running)}")
    for host in spec.hosts:
        holder = namespaces.holder_pid(spec, host)
        in_ns = namespaces.pids_in_namespace(holder) if holder else []
        libvirtd = libvirt_host.daemon_pid(spec, host, "libvirtd") in in_ns
        agent = procs.recorded_pid(pids / f"{host.name}-compute.pid") is not None
        fbm = f"file_backed_memory {host.file_backed_memory_mb} MiB"
        lines.append(
            f"  {host.name} {spec.address_of(host)} ({fbm}): namespace {_state(bool(holder))}, "
            f"libvirtd {_state(libvirtd)}, filemem-compute {_state(agent)}"
        )
    return lines


def reach_lines(cloud: Cloud) -> list[str]:
    """How a person reaches the cloud (printed by `up`)."""
    spec = cloud.spec
    lines = [
        f"clouds.yaml: {cloud.clouds_yaml}",
        f"  export OS_CLIENT_CONFIG_FILE={cloud.clouds_yaml} "
        f"OS_CLOUD={control_plane.CLOUD_NAME_IN_YAML}",
        "  openstack server create --flavor m1.tiny --image filemem-test --no-network "
        "--availability-zone nova:host1 vm1",
        f"filemem-api: {', '.join(cloud.plane.api_urls)}",
        f"  admin token in {control_plane.token_path(spec)} (0600)",
        f"placement: {cloud.plane.placement_url} (noauth2: X-Auth-Token: admin)",
        "hosts:",
    ]
    for host in spec.hosts:
        lines.append(
            f"  {host.name} {spec.address_of(host)}  virsh -c {spec.libvirt_uri(host)} list"
            f"  (file_backed_memory {host.file_backed_memory_mb} MiB)"
        )
    lines.append(f"logs: {cloud.log_dir} (and {spec.base}/host*/log for libvirtd)")
    lines.append(f"stop: scripts/cloud down {spec.name}")
    return lines
