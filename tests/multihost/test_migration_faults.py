"""Live migration through filemem under faults, on a real 3-host cloud: an API process dies,
the source agent dies, the destination's libvirtd is down, an abort; and into a host without
file-backed memory. Whatever happens, the guest runs on exactly one host, the database says
which, Placement holds its memory there only, and its memory is intact."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from devtools.cloud import cloud as cloudlib
from devtools.cloud import control_plane, libvirt_host, namespaces, procs
from devtools.cloud.spec import MEMORY_BACKING_DIR, HostSpec
from devtools.memcheck import MemcheckPass, parse_memcheck_console
from devtools.test_image import ensure_test_image
from tests.multihost.conftest import cloud_up

# Simulated hosts, each with a libvirtd of its own in a namespace: needs libvirtd.
pytestmark = pytest.mark.functional

MICROVERSION = "2.30"
TERMINAL = {"completed", "failed", "error", "cancelled"}
# Slow enough on the source that a fault lands while the migration runs (~10 s for 256 MiB).
SOURCE_BANDWIDTH_MIB = 12
TIMEOUT_S = 150.0


@pytest.fixture(scope="module")
def cloud() -> Iterator[cloudlib.Cloud]:
    up = cloud_up(3, {3: HostSpec(3, 1024, False)})
    try:
        host1 = up.spec.hosts[0]
        control_plane.extra_conf_path(up.spec, host1).write_text(
            f"[libvirt]\nlive_migration_bandwidth = {SOURCE_BANDWIDTH_MIB}\n"
        )
        cloudlib.restart_agent(up, host1)
        yield up
    finally:
        assert cloudlib.down(up.spec.name, root=up.spec.root)


class Api:
    """The Compute API of one filemem-api process at 2.30, and the cloud's Placement."""

    def __init__(self, cloud: cloudlib.Cloud, index: int = 0) -> None:
        self.cloud = cloud
        self.http = httpx.Client(
            base_url=f"{cloud.plane.api_urls[index]}/v2.1",
            headers={
                "X-Auth-Token": cloud.token,
                "OpenStack-API-Version": f"compute {MICROVERSION}",
            },
            timeout=30,
        )
        self.placement = httpx.Client(
            base_url=cloud.plane.placement_url,
            headers={"X-Auth-Token": "admin", "OpenStack-API-Version": "placement 1.37"},
            timeout=30,
        )

    def wait(self, what: str, done: Callable[[], bool], timeout: float = TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(0.25)
        logs = "".join(
            f"\n--- {p.name} ---\n{procs.log_tail(p, 2500)}"
            for p in sorted(self.cloud.log_dir.glob("*.log"))
            if p.name.startswith(("host", "api"))
        )
        raise AssertionError(f"timed out waiting for {what}{logs}")

    def server(self, uuid: str) -> dict[str, Any]:
        answer = self.http.get(f"/servers/{uuid}")
        answer.raise_for_status()
        return dict(answer.json()["server"])

    def boot(self, host: str) -> str:
        """A 256 MiB guest on `host` whose memcheck fills 96 MiB, re-writes 2 MiB twice a
        second and checks all 96 MiB every 4th pass."""
        image = self.memcheck_image()
        flavor = next(
            f["id"] for f in self.http.get("/flavors").json()["flavors"] if f["name"] == "m1.tiny"
        )
        body = {
            "name": "lm",
            "flavorRef": flavor,
            "imageRef": image,
            "availability_zone": f"nova:{host}",
            "networks": "none",
        }
        answer = self.http.post("/servers", json={"server": body})
        assert answer.status_code == 202, answer.text
        uuid = str(answer.json()["server"]["id"])
        self.wait(f"{uuid} ACTIVE", lambda: self.server(uuid)["status"] == "ACTIVE")
        self.wait(f"{uuid} memcheck running", lambda: len(self.passes(uuid, host)) >= 2)
        return uuid

    def memcheck_image(self) -> str:
        for image in self.http.get("/images").json()["images"]:
            if image["name"] == "lm-memcheck":
                return str(image["id"])
        test_image = ensure_test_image(log=lambda _: None)
        answer = self.http.post(
            f"{self.cloud.plane.api_urls[0]}/image/v2/images",
            json={
                "name": "lm-memcheck",
                "kernel_path": str(test_image.kernel),
                "initrd_path": str(test_image.initrd),
                # 2 MiB re-written every 0.5 s: a dirty rate the capped bandwidth outruns
                # (a migration must converge), every 4th pass checks all 96 MiB.
                "cmdline": test_image.memcheck_cmdline(
                    mem_mb=96, hot_mb=2, verify_every=4, pass_delay_ms=500
                ),
            },
        )
        answer.raise_for_status()
        return str(answer.json()["id"])

    def passes(self, uuid: str, host: str) -> list[MemcheckPass]:
        """memcheck's pass lines on the console log as `host` has it."""
        spec = self.cloud.spec
        log = (
            spec.host_dir(host_spec(spec.hosts, host))
            / "state"
            / "instances"
            / uuid
            / "console.log"
        )
        text = log.read_text(errors="replace") if log.exists() else ""
        return [line for line in parse_memcheck_console(text) if isinstance(line, MemcheckPass)]

    def migrate(self, uuid: str, host: str) -> None:
        answer = self.http.post(
            f"/servers/{uuid}/action",
            json={"os-migrateLive": {"host": host, "block_migration": "auto"}},
        )
        assert answer.status_code == 202, answer.text

    def failure_reason(self, uuid: str) -> str:
        """The Error event's text of the server's newest live-migration action: where nova's
        shapes let filemem record why a migration failed (os-migrations has no field)."""
        actions = self.http.get(f"/servers/{uuid}/os-instance-actions").json()["instanceActions"]
        for action in actions:
            if action["action"] != "live-migration":
                continue
            path = f"/servers/{uuid}/os-instance-actions/{action['request_id']}"
            detail = self.http.get(path).json()["instanceAction"]
            for event in reversed(detail.get("events") or []):
                if event.get("result") == "Error":
                    return str(event.get("traceback") or event.get("event"))
            break
        return ""

    def migration(self, uuid: str) -> dict[str, Any]:
        found = self.http.get(
            "/os-migrations", params={"instance_uuid": uuid, "migration_type": "live-migration"}
        ).json()["migrations"]
        assert found, f"no live migration of {uuid}"
        return dict(found[0])

    def wait_status(
        self, uuid: str, statuses: set[str], meanwhile: Callable[[], None] | None = None
    ) -> dict[str, Any]:
        """Wait for the live migration to reach one of `statuses`, calling `meanwhile` (its
        assertions) at every poll before."""

        def reached() -> bool:
            if self.migration(uuid)["status"] in statuses:
                return True
            if meanwhile is not None:
                meanwhile()
            return False

        self.wait(f"migration of {uuid} {statuses}", reached)
        return self.migration(uuid)

    def claims_held(self, uuid: str, source: str, dest: str) -> Callable[[], None]:
        """While it runs, the instance claims the destination and the source's share is held
        (by the migration consumer): no agent's heal may take either away."""

        def check() -> None:
            on_dest, on_source = self.consumers_on(dest), self.consumers_on(source)
            if self.migration(uuid)["status"] != "running":
                return  # read while it was running only if it still runs after the reads
            assert uuid in on_dest, f"the destination claim of {uuid} is gone: {on_dest}"
            assert uuid not in on_source and on_source, f"{source} holds {on_source}"

        return check

    def consumers_on(self, host: str) -> set[str]:
        providers = self.placement.get("/resource_providers", params={"name": host}).json()
        uuid = providers["resource_providers"][0]["uuid"]
        answer = self.placement.get(f"/resource_providers/{uuid}/allocations").json()
        return {c for c, a in answer["allocations"].items() if a["resources"].get("MEMORY_MB")}

    def delete(self, uuid: str) -> None:
        self.http.delete(f"/servers/{uuid}")
        self.wait(f"{uuid} deleted", lambda: self.http.get(f"/servers/{uuid}").status_code == 404)


def host_spec(hosts: tuple[HostSpec, ...], name: str) -> HostSpec:
    return next(h for h in hosts if h.name == name)


def virsh(cloud: cloudlib.Cloud, host: HostSpec, *args: str) -> subprocess.CompletedProcess[str]:
    """`virsh` against the host's libvirtd; the caller reads the outcome (never raises)."""
    argv = ["virsh", "-c", cloud.spec.libvirt_uri(host), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def running_on(cloud: cloudlib.Cloud, uuid: str) -> list[str]:
    """The hosts whose libvirtd runs the guest."""
    return [
        host.name
        for host in cloud.spec.hosts
        if virsh(cloud, host, "domstate", f"instance-{uuid}").stdout.strip() == "running"
    ]


def memory_file_hosts(cloud: cloudlib.Cloud, uuid: str) -> list[str]:
    prefix = f"instance-{uuid}"[:20]
    found = []
    for host in cloud.spec.hosts:
        holder = namespaces.holder_pid(cloud.spec, host)
        assert holder is not None
        files = namespaces.run_in(holder, ["find", str(MEMORY_BACKING_DIR), "-name", "pc.ram"])
        if prefix in files:
            found.append(host.name)
    return found


def assert_settled(api: Api, uuid: str, host: str, other: str) -> None:
    """One guest, on `host`: libvirt, the database and Placement agree; memory intact."""
    api.wait(f"{uuid} ACTIVE, no task", lambda: not api.server(uuid)["OS-EXT-STS:task_state"])
    server = api.server(uuid)
    assert server["status"] == "ACTIVE" and server["OS-EXT-SRV-ATTR:host"] == host, server
    assert running_on(api.cloud, uuid) == [host]
    # Placement within one resource-sync period of the agents (10 s; after an agent crash the
    # hosts' heal is what settles it), then exactly: the instance on `host`, nothing on `other`.
    api.wait(
        f"{uuid}'s allocation on {host} only",
        lambda: uuid in api.consumers_on(host) and not api.consumers_on(other),
        timeout=30,
    )
    before = len(api.passes(uuid, host))
    try:
        api.wait(
            f"{uuid} memcheck going on {host}",
            lambda: len(api.passes(uuid, host)) > before + 2,
        )
    except AssertionError as exc:
        raise AssertionError(
            f"{exc}\n--- the guest's vCPU ---\n{guest_cpu_state(api.cloud, uuid, host)}"
        ) from None
    bad = [p for p in api.passes(uuid, host) if not p.ok]
    assert not bad, f"memory corrupted: {bad[:3]}"


def unthrottle(cloud: cloudlib.Cloud, uuid: str, source: str = "host1") -> None:
    """Lift the source's bandwidth cap once the fault has landed. The cap only makes room for
    the fault; a TCG guest that converges slowly at 12 MiB/s was sometimes left hung on the
    destination (QEMU 7.2: seen with filemem's driver alone; README, several hosts)."""
    # The migration may have ended already: then there is nothing to speed up.
    host = host_spec(cloud.spec.hosts, source)
    virsh(cloud, host, "migrate-setspeed", f"instance-{uuid}", "--bandwidth", "8192")


def guest_cpu_state(cloud: cloudlib.Cloud, uuid: str, host: str) -> str:
    """What QEMU says of a guest that stopped printing: hung (RIP fixed, IF clear) or idle."""
    spec = host_spec(cloud.spec.hosts, host)
    lines = []
    for command in ("info status", "info registers", "info lapic"):
        out = virsh(cloud, spec, "qemu-monitor-command", f"instance-{uuid}", "--hmp", command)
        lines += [
            line
            for line in (out.stdout + out.stderr).splitlines()
            if line.startswith(("VM status", "RIP", "IRR", "ISR", "Timer", "error"))
        ]
    return "\n".join(lines)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code < 500
    except httpx.HTTPError:
        return False


def kill_api(cloud: cloudlib.Cloud, index: int) -> None:
    pid = procs.recorded_pid(control_plane.api_process(cloud.spec, index))
    assert pid is not None, f"filemem-api {index} is not running"
    os.kill(pid, signal.SIGKILL)
    while procs.alive(pid):
        time.sleep(0.05)


def test_api_process_dies_mid_migration(cloud: cloudlib.Cloud) -> None:
    api1, api2 = Api(cloud, 0), Api(cloud, 1)
    uuid = api1.boot("host1")
    try:
        api1.migrate(uuid, "host2")
        api2.wait_status(uuid, {"running"})
        kill_api(cloud, 1)
        unthrottle(cloud, uuid)
        done = api2.wait_status(uuid, TERMINAL, api2.claims_held(uuid, "host1", "host2"))
        assert done["status"] == "completed", done
        assert_settled(api2, uuid, "host2", "host1")
        assert memory_file_hosts(cloud, uuid) == ["host2"]
    finally:
        control_plane.api_process(cloud.spec, 1, start=True)
        api2.wait("API 1 back", lambda: answers(cloud.plane.api_urls[0]))
        api2.delete(uuid)


def test_abort_keeps_the_guest_on_the_source(cloud: cloudlib.Cloud) -> None:
    api = Api(cloud)
    uuid = api.boot("host1")
    try:
        api.migrate(uuid, "host2")
        running = api.wait_status(uuid, {"running"})
        answer = api.http.delete(f"/servers/{uuid}/migrations/{running['id']}")
        assert answer.status_code == 202, answer.text
        done = api.wait_status(uuid, TERMINAL)
        assert done["status"] == "cancelled", done
        assert_settled(api, uuid, "host1", "host2")
        assert memory_file_hosts(cloud, uuid) == ["host1"]
    finally:
        api.delete(uuid)


def test_destination_libvirtd_down_rolls_back(cloud: cloudlib.Cloud) -> None:
    api = Api(cloud)
    host2 = cloud.spec.hosts[1]
    uuid = api.boot("host1")
    libvirt_host.stop_libvirtd(cloud.spec, host2)
    try:
        api.migrate(uuid, "host2")
        done = api.wait_status(uuid, TERMINAL)
        assert done["status"] in ("failed", "error"), done
    finally:
        holder = namespaces.holder_pid(cloud.spec, host2)
        assert holder is not None
        libvirt_host.start_libvirtd(cloud.spec, host2, holder, print)
    try:
        assert_settled(api, uuid, "host1", "host2")
    finally:
        api.delete(uuid)


def test_source_agent_dies_mid_migration(cloud: cloudlib.Cloud) -> None:
    """Killed while libvirt migrates, restarted: the migration ends one way or the other (the
    contract: the destination reports completed if the guest arrived, else the restarted
    source reports failed) and everything agrees on where the guest is."""
    api = Api(cloud)
    host1 = cloud.spec.hosts[0]
    uuid = api.boot("host1")
    try:
        api.migrate(uuid, "host2")
        api.wait_status(uuid, {"running"})
        pid = procs.recorded_pid(control_plane.agent_pid_file(cloud.spec, host1))
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        unthrottle(cloud, uuid)
        time.sleep(2)
        control_plane.start_agent(cloud.spec, host1, cloud.plane)
        done = api.wait_status(uuid, TERMINAL)
        where, other = ("host2", "host1") if done["status"] == "completed" else ("host1", "host2")
        assert done["status"] in ("completed", "failed"), done
        assert_settled(api, uuid, where, other)
    finally:
        api.delete(uuid)


def test_never_into_a_host_that_backs_memory_differently(cloud: cloudlib.Cloud) -> None:
    """libvirt cannot change a guest's memory backing source during a live migration
    (measured: "Target memoryBacking source 'none' doesn't match source memoryBacking source
    'file'"): a file-backed guest moved towards a RAM-backed host is refused up front (400) or
    fails cleanly, and stays where it was, whole."""
    api = Api(cloud)
    uuid = api.boot("host2")
    try:
        answer = api.http.post(
            f"/servers/{uuid}/action",
            json={"os-migrateLive": {"host": "host3", "block_migration": "auto"}},
        )
        if answer.status_code == 202:
            done = api.wait_status(uuid, TERMINAL)
            assert done["status"] in ("failed", "error"), done
        else:
            assert answer.status_code == 400, answer.text
        assert_settled(api, uuid, "host2", "host3")
        assert memory_file_hosts(cloud, uuid) == ["host2"]
    finally:
        api.delete(uuid)
