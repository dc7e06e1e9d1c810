"""Live migration: filemem's driver (XML rewrite, monitor thread) vs raw `virsh migrate --p2p`
of the same running 256 MiB file-backed guest between two simulated hosts, interleaved."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path

from bench._common import bench_parser, interleaved, median, ms, table, wait_for_line
from devtools.cloud import hosts
from devtools.cloud.spec import CloudSpec, build_spec
from devtools.test_image import ensure_test_image
from filemem.common.guests import Flavor, Image
from filemem.virt.driver import MigrationTarget
from filemem.virt.libvirt.driver import DriverSettings, LibvirtDriver
from filemem.virt.migration import MigrationOutcome

ROOT = Path("/var/lib/filemem-cloud")
IMAGE_DIR = Path("/var/lib/filemem/images/test")
STORE_MB = 1024


@dataclass(frozen=True)
class Pair:
    filemem_s: float
    virsh_s: float
    order: str = "filemem h1->h2, then virsh h2->h1"


def driver(spec: CloudSpec, index: int) -> LibvirtDriver:
    host = spec.hosts[index]
    return LibvirtDriver(
        DriverSettings(
            connection_uri=spec.libvirt_uri(host),
            virt_type="qemu",
            file_backed_memory_mb=STORE_MB,
            allocation_mode="immediate",
            headroom_mb=16,
            state_path=spec.host_dir(host) / "state",
            qemu_conf_path=spec.host_dir(host) / "etc" / "qemu.conf",
            shutdown_timeout=5,
        )
    )


def measure(spec: CloudSpec, runs: int, warmup: int) -> list[Pair]:
    h1, h2 = driver(spec, 0), driver(spec, 1)
    files = ensure_test_image(IMAGE_DIR)
    image = Image(
        kind="kernel", kernel=files.kernel, initrd=files.initrd, cmdline=files.cmdline(32)
    )
    uuid = str(uuidlib.uuid4())
    name = f"instance-{uuid}"
    h1.spawn(name, uuid, Flavor("m256", 1, 256), image)
    wait_for_line(h1.console_log(uuid), files.ready_line, 120)
    h2.prepare_incoming(uuid)
    dest = MigrationTarget(
        spec.address_of(spec.hosts[1]), STORE_MB, instance_dir=h2.instance_dir(uuid)
    )

    def pair(_: int) -> Pair:
        t0 = time.perf_counter()
        result = h1.live_migrate(uuid, dest).wait(300)
        t1 = time.perf_counter()
        assert result is not None and result.outcome is MigrationOutcome.COMPLETED, result
        argv = ["virsh", "-c", spec.libvirt_uri(spec.hosts[1]), "migrate", "--live", "--p2p"]
        argv += ["--persistent", "--undefinesource", name, spec.libvirt_uri(spec.hosts[0])]
        subprocess.run(argv, check=True, capture_output=True)
        return Pair(t1 - t0, time.perf_counter() - t1)

    try:
        return interleaved(warmup, runs, pair)
    finally:
        h1.destroy(uuid)
        h2.destroy(uuid)


def main() -> None:
    parser = bench_parser("live_migration", __doc__ or "", runs=5, warmup=1)
    args = parser.parse_args()
    with hosts.root_lock(ROOT):
        spec = build_spec("b" + uuidlib.uuid4().hex[:7], 2, hosts.free_subnet(ROOT), None, ROOT)
        spec.base.mkdir(mode=0o755, parents=True)
        hosts.save(spec)
    try:
        hosts.up_hosts(spec, print)
        pairs = measure(spec, args.runs, args.warmup)
    finally:
        hosts.down_hosts(spec, print)
        shutil.rmtree(spec.base, ignore_errors=True)
    a, b = median([p.filemem_s for p in pairs]), median([p.virsh_s for p in pairs])
    rows = [[f"run {i + 1}", ms(p.filemem_s), ms(p.virsh_s)] for i, p in enumerate(pairs)]
    rows.append(["median", ms(a), ms(b)])
    print(table(["256 MiB file-backed guest", "filemem ms", "virsh ms"], rows))
    print(f"ratio filemem / virsh (medians): {a / b:.3f}")


if __name__ == "__main__":
    main()
