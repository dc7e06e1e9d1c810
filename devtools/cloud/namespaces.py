"""Network + mount + UTS namespaces per simulated host, on a bridge in the root namespace."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from devtools.cloud import procs
from devtools.cloud.spec import CloudSpec, HostSpec

HOLDER_PID = "holder.pid"


def create_bridge(spec: CloudSpec) -> None:
    """The cloud's bridge with the gateway address (where the control plane listens)."""
    procs.run(["ip", "link", "add", spec.bridge, "type", "bridge"])
    procs.run(["ip", "addr", "add", f"{spec.gateway}/24", "dev", spec.bridge])
    procs.run(["ip", "link", "set", spec.bridge, "up"])


def create_netns(spec: CloudSpec, host: HostSpec) -> None:
    """The host's network namespace: loopback and one veth on the bridge with its address."""
    ns, veth = spec.netns(host), spec.veth(host)
    procs.run(["ip", "netns", "add", ns])
    procs.run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    procs.run(["ip", "link", "set", veth, "master", spec.bridge, "up"])
    procs.run(["ip", "-n", ns, "addr", "add", f"{spec.address_of(host)}/24", "dev", "eth0"])
    procs.run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    procs.run(["ip", "-n", ns, "link", "set", "lo", "up"])


def start_holder(spec: CloudSpec, host: HostSpec) -> int:
    """A `sleep infinity` in the netns and in fresh mount and UTS namespaces: everything of the
    host is entered through it (nsenter -t <pid>), and its mounts live as long as it does."""
    host_dir = spec.host_dir(host)
    pid = procs.spawn(
        [
            "ip",
            "netns",
            "exec",
            spec.netns(host),
            "unshare",
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "sleep",
            "infinity",
        ],
        log_path=host_dir / "log" / "holder.log",
        pid_file=host_dir / HOLDER_PID,
    )
    own_mnt = os.readlink("/proc/self/ns/mnt")

    def entered() -> bool:
        # ip and unshare exec in turn: the pid is the sleep once its mount ns is a new one.
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            return comm == "sleep" and os.readlink(f"/proc/{pid}/ns/mnt") != own_mnt
        except OSError:
            return False

    procs.wait_for(
        f"{host.name}: namespace holder",
        entered,
        10,
        lambda: procs.log_tail(host_dir / "log" / "holder.log"),
    )
    # Record again: the start time is the same process, now known to be the holder.
    procs.record(host_dir / HOLDER_PID, pid)
    return pid


def holder_pid(spec: CloudSpec, host: HostSpec) -> int | None:
    return procs.recorded_pid(spec.host_dir(host) / HOLDER_PID)


def enter(pid: int, argv: Sequence[str]) -> list[str]:
    """argv run inside the host whose holder is `pid` (mount, network and UTS namespaces)."""
    return ["nsenter", "-t", str(pid), "-m", "-n", "-u", "--", *argv]


def run_in(pid: int, argv: Sequence[str], *, check: bool = True, timeout: float = 60.0) -> str:
    return procs.run(enter(pid, argv), check=check, timeout=timeout)


def pids_in_namespace(holder: int) -> list[int]:
    """Every process sharing the holder's network namespace (its daemons, agent, and QEMUs,
    which libvirt puts in mount namespaces of their own), holder excluded: the processes that
    must end before the host is gone."""
    try:
        target = os.readlink(f"/proc/{holder}/ns/net")
    except OSError:
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == holder:
            continue
        try:
            if os.readlink(entry / "ns" / "net") == target:
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def kill_namespace_processes(holder: int, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, every process left in the host's namespace (never others)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids_in_namespace(holder):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and pids_in_namespace(holder):
            time.sleep(procs.POLL_S)
        if not pids_in_namespace(holder):
            return


def remove_host(spec: CloudSpec, host: HostSpec) -> None:
    """Stop the holder (its mounts go with its mount namespace), then the netns and veth."""
    holder = holder_pid(spec, host)
    if holder is not None:
        kill_namespace_processes(holder)
        procs.terminate(holder, 5)
    (spec.host_dir(host) / HOLDER_PID).unlink(missing_ok=True)
    subprocess.run(["ip", "netns", "delete", spec.netns(host)], capture_output=True, check=False)
    subprocess.run(["ip", "link", "delete", spec.veth(host)], capture_output=True, check=False)


def remove_bridge(spec: CloudSpec) -> None:
    subprocess.run(["ip", "link", "delete", spec.bridge], capture_output=True, check=False)


def leftovers(spec: CloudSpec) -> list[str]:
    """Interfaces and namespaces of this cloud that still exist (empty after a clean down)."""
    found = []
    links = procs.run(["ip", "-o", "link"], check=False)
    namespaces = procs.run(["ip", "netns", "list"], check=False).split()
    if f" {spec.bridge}:" in links:
        found.append(f"bridge {spec.bridge}")
    for host in spec.hosts:
        if f" {spec.veth(host)}@" in links:
            found.append(f"veth {spec.veth(host)}")
        if spec.netns(host) in namespaces:
            found.append(f"netns {spec.netns(host)}")
    return found
