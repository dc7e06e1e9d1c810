"""Bring a cloud's simulated hosts up and down; the cloud's record (cloud.json) and its lock."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from devtools.cloud import libvirt_host, namespaces, procs
from devtools.cloud.procs import CloudError
from devtools.cloud.spec import CloudSpec, HostSpec, pick_subnet_index

RECORD = "cloud.json"

Progress = Callable[[str], None]


@contextmanager
def root_lock(root: Path) -> Iterator[None]:
    """One `up`/`down` at a time per state root: subnets are picked under it."""
    root.mkdir(mode=0o755, parents=True, exist_ok=True)
    with (root / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def save(spec: CloudSpec, extra: dict[str, object] | None = None) -> None:
    record = {
        "name": spec.name,
        "subnet_index": spec.subnet_index,
        "hosts": [asdict(host) for host in spec.hosts],
        **(extra or {}),
    }
    path = spec.base / RECORD
    path.write_text(json.dumps(record, indent=2) + "\n")


def load(root: Path, name: str) -> tuple[CloudSpec, dict[str, object]] | None:
    """The recorded cloud `name`, or None when there is none."""
    try:
        record = json.loads((root / name / RECORD).read_text())
    except FileNotFoundError:
        return None
    hosts = tuple(HostSpec(**host) for host in record.pop("hosts"))
    spec = CloudSpec(record.pop("name"), record.pop("subnet_index"), hosts, root)
    return spec, record


def taken_subnets(root: Path) -> set[int]:
    taken = set()
    for record in root.glob(f"*/{RECORD}"):
        try:
            taken.add(int(json.loads(record.read_text())["subnet_index"]))
        except (OSError, ValueError, KeyError):
            continue
    return taken


def free_subnet(root: Path) -> int:
    """Call under root_lock: a subnet index no interface and no other cloud uses."""
    return pick_subnet_index(procs.run(["ip", "-o", "addr"]), taken_subnets(root))


def up_host(spec: CloudSpec, host: HostSpec, progress: Progress) -> int:
    """Namespaces, mounts, store, private libvirtd for one host; returns the holder pid."""
    namespaces.create_netns(spec, host)
    libvirt_host.prepare_dirs(spec, host)
    holder = namespaces.start_holder(spec, host)
    libvirt_host.mount_host(spec, host, holder)
    store = f"{host.store_mb} MiB tmpfs store" if host.file_backed else "no file-backed store"
    progress(f"{host.name}: namespace {spec.netns(host)} at {spec.address_of(host)}, {store}")
    libvirt_host.start_daemons(spec, host, holder, progress)
    return holder


def up_hosts(spec: CloudSpec, progress: Progress) -> None:
    """Bridge + every host. Call with the cloud's directory and record already written."""
    namespaces.create_bridge(spec)
    for host in spec.hosts:
        up_host(spec, host, progress)


def down_host(spec: CloudSpec, host: HostSpec) -> None:
    """Guests, daemons, then every process left in the namespace, mounts, netns, veth."""
    libvirt_host.destroy_guests(spec, host)
    libvirt_host.stop_daemons(spec, host)
    namespaces.remove_host(spec, host)


def down_hosts(spec: CloudSpec, progress: Progress) -> None:
    for host in spec.hosts:
        down_host(spec, host)
        progress(f"{host.name}: stopped, namespace removed")
    namespaces.remove_bridge(spec)
    left = namespaces.leftovers(spec)
    if left:
        raise CloudError(f"cloud {spec.name}: still present after down: {', '.join(left)}")
