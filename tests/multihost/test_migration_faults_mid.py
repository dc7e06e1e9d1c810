"""Live migration through filemem when the destination fails while memory is on the wire: its
libvirtd dies, its incoming QEMU dies, its link is cut. Each time the migration ends failed
with a reason, the guest runs on the source only, whole, Placement holds it there only and its
memory file is on the source's store only (issue 10, item 4)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.cloud import cloud as cloudlib
from devtools.cloud import libvirt_host, namespaces, procs
from devtools.cloud.spec import HostSpec
from tests.multihost import test_migration_faults as faults

# Simulated hosts, each with a libvirtd of its own in a namespace: needs libvirtd.
pytestmark = pytest.mark.functional

# The same 3-host cloud as test_migration_faults (host1 sends at a capped bandwidth): one per
# module, shared by this module's tests.
cloud = faults.cloud

# libvirt's keepalive (5 s x 5) or the migration stream's TCP error ends a migration whose
# peer vanished from the network: well within this.
LINK_CUT_TIMEOUT_S = 90.0


def wait_transferring(api: faults.Api, uuid: str) -> dict[str, Any]:
    """Until the live migration runs and has sent memory (the fault lands mid-stream)."""
    seen: dict[str, Any] = {}

    def moving() -> bool:
        rows = api.http.get(f"/servers/{uuid}/migrations").json()["migrations"]
        for row in rows:
            if row["status"] == "running" and (row["memory_processed_bytes"] or 0) > 0:
                seen.update(row)
                return True
        return False

    api.wait(f"migration of {uuid} sending memory", moving)
    return seen


def incoming_qemu(cloud: cloudlib.Cloud, host: HostSpec, uuid: str) -> list[int]:
    """The QEMU processes of the guest's domain in `host`'s namespace (all hosts share the
    PID namespace: the network namespace tells the destination's QEMU from the source's)."""
    holder = namespaces.holder_pid(cloud.spec, host)
    assert holder is not None, f"{host.name} has no namespace holder"
    name = f"guest=instance-{uuid}".encode()
    found = []
    for pid in namespaces.pids_in_namespace(holder):
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if comm.startswith("qemu-system") and name in cmdline:
            found.append(pid)
    return found


def service_up(api: faults.Api, host: str) -> bool:
    try:
        answer = api.http.get("/os-services", params={"host": host, "binary": "nova-compute"})
        services = answer.json()["services"]
    except (httpx.HTTPError, ValueError, KeyError):
        return False
    return bool(services) and all(s["state"] == "up" for s in services)


def wait_ended(api: faults.Api, uuid: str, timeout: float = faults.TIMEOUT_S) -> None:
    api.wait(
        f"migration of {uuid} to end",
        lambda: api.migration(uuid)["status"] in faults.TERMINAL,
        timeout=timeout,
    )


def assert_failed_on_source(api: faults.Api, uuid: str, timeout: float = faults.TIMEOUT_S) -> None:
    """The migration failed with a reason; the guest is on host1 only, whole; Placement holds
    the instance there and nothing else (no migration consumer); its memory file too."""
    wait_ended(api, uuid, timeout)
    done = api.migration(uuid)
    assert done["status"] in ("failed", "error"), done
    assert api.failure_reason(uuid), f"no reason recorded: {done}"
    # The destination's leftover QEMU (if any) is its libvirtd's to reap: within a bound.
    settles(api.cloud, f"{uuid}'s hosts", lambda: faults.running_on(api.cloud, uuid), ["host1"])
    faults.assert_settled(api, uuid, "host1", "host2")
    api.wait(
        f"only {uuid} allocated on host1 (no migration consumer)",
        lambda: api.consumers_on("host1") == {uuid},
        timeout=30,
    )
    settles(
        api.cloud,
        f"{uuid}'s memory file",
        lambda: faults.memory_file_hosts(api.cloud, uuid),
        ["host1"],
    )


def settles(
    cloud: cloudlib.Cloud,
    what: str,
    read: Callable[[], object],
    wanted: object,
    timeout: float = 30,
) -> None:
    """`read()` reaches `wanted` within `timeout` (the destination's libvirtd reaps what the
    failed migration left there); else fail naming what it is, with the hosts' libvirtd logs."""
    deadline = time.monotonic() + timeout
    while (found := read()) != wanted and time.monotonic() < deadline:
        time.sleep(0.5)
    assert found == wanted, f"{what}: {found}, expected {wanted} (after {timeout} s)" + "".join(
        f"\n--- {h.name} libvirtd.log ---\n"
        + procs.log_tail(cloud.spec.host_dir(h) / "log" / "libvirtd.log", 3000)
        for h in cloud.spec.hosts[:2]
    )


def restart_libvirtd(cloud: cloudlib.Cloud, host: HostSpec) -> None:
    holder = namespaces.holder_pid(cloud.spec, host)
    assert holder is not None
    libvirt_host.start_libvirtd(cloud.spec, host, holder, print)


def test_destination_libvirtd_killed_mid_migration(cloud: cloudlib.Cloud) -> None:
    api = faults.Api(cloud)
    host2 = cloud.spec.hosts[1]
    uuid = api.boot("host1")
    try:
        api.migrate(uuid, "host2")
        wait_transferring(api, uuid)
        pid = libvirt_host.daemon_pid(cloud.spec, host2, "libvirtd")
        holder = namespaces.holder_pid(cloud.spec, host2)
        assert pid is not None and holder is not None
        assert pid in namespaces.pids_in_namespace(holder), f"libvirtd {pid} is not host2's"
        os.kill(pid, signal.SIGKILL)
        try:
            wait_ended(api, uuid)
        finally:
            # Back before judging: a dead libvirtd cannot say whether host2 still runs it.
            restart_libvirtd(cloud, host2)
        assert_failed_on_source(api, uuid)
        api.wait("host2's service up", lambda: service_up(api, "host2"))
    finally:
        api.delete(uuid)


def test_destination_qemu_killed_mid_migration(cloud: cloudlib.Cloud) -> None:
    api = faults.Api(cloud)
    host2 = cloud.spec.hosts[1]
    uuid = api.boot("host1")
    try:
        api.migrate(uuid, "host2")
        wait_transferring(api, uuid)
        incoming = incoming_qemu(cloud, host2, uuid)
        assert len(incoming) == 1, f"host2's incoming QEMU for {uuid}: {incoming}"
        os.kill(incoming[0], signal.SIGKILL)
        assert_failed_on_source(api, uuid)
        assert not incoming_qemu(cloud, host2, uuid)
    finally:
        api.delete(uuid)


def set_link(cloud: cloudlib.Cloud, host: HostSpec, state: str) -> None:
    """The root namespace's end of the host's veth (on the bridge): down cuts the host off."""
    subprocess.run(["ip", "link", "set", cloud.spec.veth(host), state], check=True)


def test_destination_link_cut_mid_migration(cloud: cloudlib.Cloud) -> None:
    api = faults.Api(cloud)
    host2 = cloud.spec.hosts[1]
    uuid = api.boot("host1")
    try:
        api.migrate(uuid, "host2")
        wait_transferring(api, uuid)
        set_link(cloud, host2, "down")
        try:
            wait_ended(api, uuid, LINK_CUT_TIMEOUT_S)
        finally:
            set_link(cloud, host2, "up")
        assert_failed_on_source(api, uuid)
        api.wait("host2's service up again", lambda: service_up(api, "host2"))
        assert not incoming_qemu(cloud, host2, uuid)
    finally:
        api.delete(uuid)
