"""The two boots timed: A through the API to the console ready line, B `virsh create` of A's XML."""

from __future__ import annotations

import contextlib
import io
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import libvirt

from bench._common import (
    POLL_S,
    URI,
    ForeignWatch,
    mkdir_0755,
    new_uuid,
    virsh,
    wait_for_line,
)

READY_TIMEOUT_S = 120.0
GONE_TIMEOUT_S = 120.0
STATUS_AFTER_S = 10.0  # ask the API whether a guest failed only once it is this late


def domain_name(uuid: str) -> str:
    """The libvirt name the agent gives an API server (`OS-EXT-SRV-ATTR:instance_name`)."""
    return f"instance-{uuid}"


class OwnedWatch(ForeignWatch):
    """ForeignWatch that also counts this run's API guests (instance-<uuid>) as ours."""

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix)
        self.ours: set[str] = set()

    def between(self, t0: float, t1: float) -> set[str]:
        return super().between(t0, t1) - self.ours

    def all(self) -> set[str]:
        return super().all() - self.ours


@dataclass(frozen=True)
class ApiSample:
    """Seconds from just before POST /servers until: the response, the agent made the instance
    directory, libvirt knew the domain, it ran, the console printed the ready line."""

    post_s: float
    agent_s: float
    defined_s: float
    running_s: float
    ready_s: float


@dataclass(frozen=True)
class VirshSample:
    """Seconds from just before `virsh create`: until it returned, until the ready line."""

    call_s: float
    ready_s: float


@dataclass
class Bench:
    """One run: scratch dir, `filemem up`'s state dir, API client, the servers it created."""

    run_dir: Path
    state: Path
    prefix: str
    ready_line: str
    watch: OwnedWatch
    http: httpx.Client
    conn: Any  # libvirt.virConnect (libvirt-python ships no types)
    flavor_id: str = ""
    image_id: str = ""
    flavor_ram_mb: int = 0
    created: list[str] = field(default_factory=list)
    gone: set[str] = field(default_factory=set)
    template: str | None = None


# -- the API ---------------------------------------------------------------------------------


def checked(response: httpx.Response) -> Any:
    if not response.is_success:
        raise RuntimeError(
            f"{response.request.method} {response.request.url}: "
            f"{response.status_code} {response.text[:300]}"
        )
    return response.json() if response.content else None


def id_named(items: list[dict[str, Any]], name: str, what: str) -> str:
    ids = [str(item["id"]) for item in items if item.get("name") == name]
    if len(ids) != 1:
        raise RuntimeError(f"`filemem up` seeded no single {what} named {name!r}")
    return ids[0]


def wait_gone(b: Bench, uuid: str) -> None:
    """Poll GET /servers/<uuid> until 404: the agent destroyed and undefined the guest."""
    deadline = time.monotonic() + GONE_TIMEOUT_S
    while b.http.get(f"/servers/{uuid}").status_code != 404:
        if time.monotonic() > deadline:
            raise TimeoutError(f"server {uuid} still exists {GONE_TIMEOUT_S:.0f} s after DELETE")
        time.sleep(0.1)
    b.gone.add(uuid)


def delete_server(b: Bench, uuid: str) -> None:
    response = b.http.delete(f"/servers/{uuid}")
    if response.status_code != 404:
        checked(response)
    wait_gone(b, uuid)


def delete_leftovers(b: Bench) -> None:
    """Every server of this state dir (all are ours) and any we created, through the API."""
    uuids = [u for u in b.created if u not in b.gone]
    with contextlib.suppress(httpx.HTTPError, RuntimeError):
        listed = checked(b.http.get("/servers"))["servers"]
        uuids += [str(s["id"]) for s in listed if s["id"] not in uuids]
    for uuid in uuids:
        try:
            delete_server(b, uuid)
            print(f"# cleanup: deleted leftover server {uuid}")
        except (httpx.HTTPError, RuntimeError, TimeoutError) as exc:
            print(f"# cleanup: could not delete server {uuid}: {exc}")


# -- A: through the API ----------------------------------------------------------------------


def console_has(path: Path, needle: str) -> bool:
    with contextlib.suppress(FileNotFoundError):
        return needle in path.read_text(errors="replace")
    return False


def note_domain(conn: Any, name: str, marks: dict[str, float]) -> None:
    """Record when libvirt first knows the domain and when its state is first `running`
    (what `virsh domstate` says once QEMU is up and the CPUs resumed; `virsh create` returns
    then too)."""
    try:
        dom = conn.lookupByName(name)
    except libvirt.libvirtError:
        return
    marks.setdefault("defined", time.perf_counter())
    with contextlib.suppress(libvirt.libvirtError):
        if dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING:
            marks["running"] = time.perf_counter()


def fail_if_error(b: Bench, uuid: str) -> None:
    server = checked(b.http.get(f"/servers/{uuid}"))["server"]
    if server.get("status") == "ERROR":
        raise RuntimeError(f"server {uuid} went to ERROR: {server.get('fault')}")


def watch_boot(b: Bench, uuid: str, t0: float) -> dict[str, float]:
    """Poll every POLL_S: instance dir, libvirt domain, console log; seconds since t0."""
    console = b.state / "instances" / uuid / "console.log"
    marks: dict[str, float] = {}
    next_status = t0 + STATUS_AFTER_S
    while True:
        if "agent" not in marks and console.parent.is_dir():
            marks["agent"] = time.perf_counter()
        if "running" not in marks:
            note_domain(b.conn, domain_name(uuid), marks)
        if console_has(console, b.ready_line):
            marks["ready"] = time.perf_counter()
            break
        now = time.perf_counter()
        if now > next_status:
            fail_if_error(b, uuid)
            next_status = now + 1.0
        if now > t0 + READY_TIMEOUT_S:
            raise TimeoutError(f"{b.ready_line!r} not in {console} after {READY_TIMEOUT_S:.0f} s")
        time.sleep(POLL_S)
    ready = marks["ready"]
    return {key: marks.get(key, ready) - t0 for key in ("agent", "defined", "running", "ready")}


def dump_inactive_xml(name: str) -> str:
    done = subprocess.run(
        ["virsh", "-c", URI, "dumpxml", "--inactive", name],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"virsh dumpxml --inactive {name} failed: {done.stderr.strip()}")
    return done.stdout


def boot_api(b: Bench, label: str) -> ApiSample:
    """A: POST /servers until the guest's console log has the ready line; then DELETE (untimed)."""
    body = {
        "server": {"name": f"{b.prefix}{label}", "flavorRef": b.flavor_id, "imageRef": b.image_id}
    }
    t0 = time.perf_counter()
    response = b.http.post("/servers", json=body)
    t_post = time.perf_counter()
    server = checked(response)["server"]
    uuid = str(server["id"])
    b.created.append(uuid)
    b.watch.ours.add(domain_name(uuid))
    try:
        if server.get("status") == "ERROR":
            raise RuntimeError(f"server {uuid} went to ERROR: {server.get('fault')}")
        marks = watch_boot(b, uuid, t0)
        if b.template is None:
            b.template = dump_inactive_xml(domain_name(uuid))
            register_namespaces(b.template)
            keep_files(b.template, b.run_dir / "template")
            print(f"# template: `virsh dumpxml --inactive {domain_name(uuid)}`", flush=True)
    finally:
        delete_server(b, uuid)
    return ApiSample(
        post_s=t_post - t0,
        agent_s=marks["agent"],
        defined_s=marks["defined"],
        running_s=marks["running"],
        ready_s=marks["ready"],
    )


# -- B: `virsh create` of the same XML -------------------------------------------------------


def register_namespaces(xml: str) -> None:
    """Keep the metadata's namespace prefix (filemem:) when ElementTree writes the copy."""
    for _event, (prefix, uri) in ET.iterparse(io.StringIO(xml), events=("start-ns",)):
        ET.register_namespace(prefix, uri)


def keep_files(template: str, directory: Path) -> None:
    """Copies of the template's read-only files (the config drive ISO): the A guest's own go
    with it, and every B guest boots with the same contents."""
    directory.mkdir(parents=True, exist_ok=True)
    for source in ET.fromstring(template).findall("./devices/disk[@device='cdrom']/source"):
        shutil.copy2(source.get("file", ""), directory / Path(source.get("file", "")).name)


def _retarget_devices(root: ET.Element, old_uuid: str, uuid: str, workdir: Path) -> None:
    """Its own copy of the config drive; the SMBIOS table names the new uuid; libvirt names
    the tap (the A guest's tap name is its port's)."""
    for source in root.findall("./devices/disk[@device='cdrom']/source"):
        kept = workdir.parent.parent / "template" / Path(source.get("file", "")).name
        copy = workdir / kept.name
        shutil.copy2(kept, copy)
        source.set("file", str(copy))
    for entry in root.findall("./sysinfo/system/entry"):
        if entry.text and old_uuid in entry.text:
            entry.text = entry.text.replace(old_uuid, uuid)
    for interface in root.findall("./devices/interface"):
        for target in interface.findall("target"):
            interface.remove(target)


def retarget(template: str, name: str, uuid: str, console: Path) -> str:
    """The template with a new name (also in filemem's metadata), uuid and console log path."""
    root = ET.fromstring(template)
    old_name, old_uuid = root.findtext("name"), root.findtext("uuid")
    if not old_name or not old_uuid:
        raise RuntimeError("the template has no <name> or <uuid>")
    for elem in root.iter():
        if elem.text is not None and elem.text.strip() == old_name:
            elem.text = name
    uuid_elem = root.find("uuid")
    assert uuid_elem is not None
    uuid_elem.text = uuid
    sources = root.findall("./devices/serial/source") + root.findall("./devices/console/source")
    if not sources:
        raise RuntimeError("the template has no serial/console <source>")
    for source in sources:
        source.set("path", str(console))
    _retarget_devices(root, old_uuid, uuid, console.parent)
    for elem in root.iter():
        if any(old_uuid in value for value in [elem.text or "", *elem.attrib.values()]):
            raise RuntimeError(f"the template still names {old_uuid} in <{elem.tag}>")
    return ET.tostring(root, encoding="unicode")


def boot_virsh(b: Bench, label: str) -> VirshSample:
    """B: the API guest's XML (fresh name, uuid, console log) through `virsh create`."""
    assert b.template is not None, "the first pair runs A first and takes the template"
    name, uuid = f"{b.prefix}{label}", new_uuid()
    workdir = mkdir_0755(b.run_dir / "virsh" / name)
    console = workdir / "console.log"
    xml_path = workdir / "domain.xml"
    xml_path.write_text(retarget(b.template, name, uuid, console))
    started = False
    try:
        t0 = time.perf_counter()
        virsh("create", str(xml_path))
        t1 = time.perf_counter()
        started = True
        t2 = wait_for_line(console, b.ready_line, READY_TIMEOUT_S)
    finally:
        if started:
            virsh("destroy", name)
        shutil.rmtree(workdir, ignore_errors=True)
    return VirshSample(call_s=t1 - t0, ready_s=t2 - t0)
