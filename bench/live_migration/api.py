"""Live migration through the API (os-migrateLive, 2.30) vs raw `virsh migrate --live --p2p` of
the same guest between the same two simulated hosts: wall time and downtime, interleaved."""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import re
import subprocess
import sys
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import httpx

from bench._common import REPO, bench_parser, interleaved, median, ms, table
from devtools.cloud import cloud as cloudlib
from devtools.cloud.spec import CloudSpec, HostSpec
from devtools.test_image import DEFAULT_DEST, READY_LINE, ensure_test_image

TARGET = 1.10
MICROVERSION = "2.30"
POLL_S = 0.05
TIMEOUT_S = 180.0
RESULTS = REPO / "bench" / "results"
TERMINAL = {"completed", "failed", "error", "cancelled"}
DESCRIPTION = (
    __doc__
    + """
Brings up a 2-host cloud (scripts/cloud's harness). For each pair, in alternating order:
  A: a server booted through the API on host1 (flavor m1.tiny, 256 MiB file-backed), migrated
     with POST /servers/{id}/action os-migrateLive {"host": "host2"} at 2.30; wall time from
     the POST until GET /os-migrations shows "completed".
  B: its twin (the same domain XML, renamed) created with virsh on host1 and migrated with
     virsh migrate --live --p2p --persistent --undefinesource to host2; wall time of that call.
Downtime of both: "Total downtime" of libvirt's completed job on the destination.
Workloads: idle (touched 64 MiB, then sleeps) and dirty (memcheck re-writes 64 MiB forever).
"""
)


@dataclass
class Pair:
    """One filemem migration (A) and one raw migration (B) of the same guest shape."""

    workload: str
    order: str
    a_wall_s: float = 0.0
    b_wall_s: float = 0.0
    a_downtime_ms: int = -1
    b_downtime_ms: int = -1

    @property
    def ratio(self) -> float:
        return self.a_wall_s / self.b_wall_s


class Bench:
    """The cloud, an API client, and the per-workload images."""

    def __init__(self, up: cloudlib.Cloud) -> None:
        self.cloud = up
        self.spec: CloudSpec = up.spec
        self.src, self.dst = up.spec.hosts[0], up.spec.hosts[1]
        self.http = httpx.Client(
            base_url=f"{up.plane.api_urls[0]}/v2.1",
            headers={"X-Auth-Token": up.token, "OpenStack-API-Version": f"compute {MICROVERSION}"},
            timeout=30,
        )
        test_image = ensure_test_image(DEFAULT_DEST, log=lambda _: None)
        self.cmdlines = {
            "idle": test_image.cmdline(touch_mb=64),
            "dirty": test_image.memcheck_cmdline(mem_mb=96, hot_mb=64, verify_every=1000),
        }
        self.images = {w: self._image(w, c, test_image) for w, c in self.cmdlines.items()}
        self.flavor = next(
            f["id"] for f in self.http.get("/flavors").json()["flavors"] if f["name"] == "m1.tiny"
        )

    def _image(self, workload: str, cmdline: str, test_image: Any) -> str:
        answer = self.http.post(
            f"{self.cloud.plane.api_urls[0]}/image/v2/images",
            json={
                "name": f"lm-{workload}",
                "kernel_path": str(test_image.kernel),
                "initrd_path": str(test_image.initrd),
                "cmdline": cmdline,
            },
        )
        answer.raise_for_status()
        return str(answer.json()["id"])

    # -- helpers ------------------------------------------------------------------------------

    def virsh(self, host: HostSpec, *args: str) -> str:
        return subprocess.run(
            ["virsh", "-c", self.spec.libvirt_uri(host), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
        ).stdout

    def downtime_ms(self, host: HostSpec, domain: str) -> int:
        """libvirt's "Total downtime" of the completed (incoming) job on `host`."""
        info = self.virsh(host, "domjobinfo", "--completed", domain)
        match = re.search(r"Total downtime:\s+(\d+)\s+ms", info)
        return int(match.group(1)) if match else -1

    def wait_console(self, host: HostSpec, relative: str, text: str) -> None:
        path = self.spec.host_dir(host) / "state" / relative
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            if path.exists() and text in path.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{text!r} not on {path} within {TIMEOUT_S:g} s")

    def wait_server(self, uuid: str, status: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            server = self.http.get(f"/servers/{uuid}").json()["server"]
            if server["status"] == status and not server.get("OS-EXT-STS:task_state"):
                return dict(server)
            if server["status"] == "ERROR":
                raise RuntimeError(f"server {uuid} went to ERROR: {server.get('fault')}")
            time.sleep(0.2)
        raise RuntimeError(f"server {uuid} not {status} within {TIMEOUT_S:g} s")

    # -- A: through filemem -------------------------------------------------------------------

    def boot_a(self, workload: str) -> str:
        body = {
            "name": f"lm-{workload}",
            "flavorRef": self.flavor,
            "imageRef": self.images[workload],
            "availability_zone": f"nova:{self.src.name}",
        }
        answer = self.http.post("/servers", json={"server": body})
        answer.raise_for_status()
        uuid = str(answer.json()["server"]["id"])
        self.wait_server(uuid, "ACTIVE")
        self.wait_console(self.src, f"instances/{uuid}/console.log", READY_LINE)
        return uuid

    def migrate_a(self, uuid: str) -> tuple[float, int]:
        start = time.monotonic()
        answer = self.http.post(
            f"/servers/{uuid}/action",
            json={"os-migrateLive": {"host": self.dst.name, "block_migration": "auto"}},
        )
        if answer.status_code != 202:
            raise RuntimeError(f"os-migrateLive: {answer.status_code} {answer.text}")
        status = ""
        while time.monotonic() - start < TIMEOUT_S:
            found = self.http.get("/os-migrations", params={"instance_uuid": uuid}).json()
            lives = [m for m in found["migrations"] if m.get("dest_compute") == self.dst.name]
            status = lives[0]["status"] if lives else ""
            if status in TERMINAL:
                break
            time.sleep(POLL_S)
        wall = time.monotonic() - start
        if status != "completed":
            raise RuntimeError(f"filemem live migration of {uuid} ended {status or 'never'}")
        return wall, self.downtime_ms(self.dst, f"instance-{uuid}")

    def delete_a(self, uuid: str) -> None:
        self.http.delete(f"/servers/{uuid}")
        deadline = time.monotonic() + TIMEOUT_S
        while self.http.get(f"/servers/{uuid}").status_code != 404:
            if time.monotonic() > deadline:
                raise RuntimeError(f"server {uuid} not deleted")
            time.sleep(0.2)

    # -- B: raw libvirt -----------------------------------------------------------------------

    def twin_xml(self, uuid: str, name: str) -> str:
        """The filemem guest's domain XML, renamed, its console to <state_path>/<name>.log."""
        root = ET.fromstring(self.virsh(self.src, "dumpxml", "--inactive", f"instance-{uuid}"))
        console = str(self.spec.state_path / "instances" / uuid / "console.log")
        root.find("name").text = name  # type: ignore[union-attr]
        root.find("uuid").text = str(uuidlib.uuid4())  # type: ignore[union-attr]
        for source in root.iter("source"):
            if source.get("path") == console:
                source.set("path", str(self.spec.state_path / f"{name}.log"))
        for element in (root.find("metadata"),):
            if element is not None:
                root.remove(element)
        return ET.tostring(root, encoding="unicode")

    def run_b(self, xml: str, name: str) -> tuple[float, int]:
        path = self.spec.host_dir(self.src) / f"{name}.xml"
        path.write_text(xml)
        self.virsh(self.src, "create", str(path))
        try:
            self.wait_console(self.src, f"{name}.log", READY_LINE)
            start = time.monotonic()
            self.virsh(
                self.src,
                "migrate",
                "--live",
                "--p2p",
                "--persistent",
                "--undefinesource",
                name,
                self.spec.libvirt_uri(self.dst),
            )
            wall = time.monotonic() - start
            return wall, self.downtime_ms(self.dst, name)
        finally:
            for host in (self.src, self.dst):
                for verb in ("destroy", "undefine"):
                    subprocess.run(
                        ["virsh", "-c", self.spec.libvirt_uri(host), verb, name],
                        capture_output=True,
                        check=False,
                    )

    # -- one pair -----------------------------------------------------------------------------

    def pair(self, workload: str, index: int, *, twin: dict[str, str]) -> Pair:
        order = "AB" if index % 2 == 0 else "BA"
        result = Pair(workload, order)
        for side in order:
            if side == "A":
                uuid = self.boot_a(workload)
                if workload not in twin:
                    twin[workload] = self.twin_xml(uuid, "TWIN")
                result.a_wall_s, result.a_downtime_ms = self.migrate_a(uuid)
                self.delete_a(uuid)
            else:
                if workload not in twin:  # BA first: a template guest for the twin's XML
                    uuid = self.boot_a(workload)
                    twin[workload] = self.twin_xml(uuid, "TWIN")
                    self.delete_a(uuid)
                name = f"raw-{uuidlib.uuid4().hex[:8]}"
                xml = twin[workload].replace("TWIN", name)
                result.b_wall_s, result.b_downtime_ms = self.run_b(xml, name)
        return result


@contextlib.contextmanager
def two_host_cloud() -> Iterator[cloudlib.Cloud]:
    name = "b" + uuidlib.uuid4().hex[:7]
    up = cloudlib.up(name, 2)
    try:
        yield up
    finally:
        cloudlib.down(name)


def report(pairs: list[Pair]) -> str:
    rows = [
        [
            str(i),
            p.workload,
            p.order,
            ms(p.a_wall_s),
            ms(p.b_wall_s),
            f"{p.ratio:.3f}",
            str(p.a_downtime_ms),
            str(p.b_downtime_ms),
        ]
        for i, p in enumerate(pairs, 1)
    ]
    lines = [
        table(["run", "workload", "order", "A ms", "B ms", "A/B", "A down ms", "B down ms"], rows),
        "",
    ]
    for workload in sorted({p.workload for p in pairs}):
        mine = [p for p in pairs if p.workload == workload]
        a_wall, b_wall = (
            ms(median([getattr(p, f) for p in mine])) for f in ("a_wall_s", "b_wall_s")
        )
        lines.append(
            f"{workload}: median A/B {median([p.ratio for p in mine]):.3f}; median wall "
            f"A {a_wall} ms, B {b_wall} ms; "
            f"median downtime A {median([p.a_downtime_ms for p in mine]):.0f} ms, "
            f"B {median([p.b_downtime_ms for p in mine]):.0f} ms"
        )
    overall = median([p.ratio for p in pairs])
    verdict = "meets" if overall <= TARGET else "MISSES"
    lines.append(f"overall median per-pair ratio A/B {overall:.3f} ({verdict} target {TARGET})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser: argparse.ArgumentParser = bench_parser(
        "live_migration.api", DESCRIPTION, runs=4, warmup=1, runs_help="measured pairs per workload"
    )
    args = parser.parse_args(argv)
    pairs: list[Pair] = []
    with two_host_cloud() as up:
        bench = Bench(up)
        twin: dict[str, str] = {}
        for workload in ("idle", "dirty"):
            print(f"# workload {workload}: {bench.cmdlines[workload]}", flush=True)
            run_pair = functools.partial(bench.pair, workload, twin=twin)
            pairs += interleaved(args.warmup, args.runs, run_pair)
    text = report(pairs)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "live_migration_api.txt").write_text(text + "\n")
    (RESULTS / "live_migration_api.json").write_text(
        json.dumps([{**asdict(p), "ratio": p.ratio} for p in pairs], indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
