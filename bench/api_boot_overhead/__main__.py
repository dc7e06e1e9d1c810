"""Boot overhead through the API: POST /servers to console ready vs `virsh create`, same XML."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import libvirt

from bench._common import (
    SCRATCH,
    URI,
    bench_parser,
    mkdir_0755,
    remove_domains,
    start_libvirt,
)
from bench._filemem_up import FILE_BACKED_MEMORY_MB, filemem_up
from bench.api_boot_overhead.boot import (
    Bench,
    OwnedWatch,
    checked,
    delete_leftovers,
    domain_name,
    id_named,
)
from bench.api_boot_overhead.pairs import TARGET, report, run_pairs
from devtools.test_image import DEFAULT_DEST, ensure_test_image
from filemem.backing import store

FLAVOR = "m1.tiny"
IMAGE = "filemem-test"
TAG = "fmapi"


# -- set-up and tear-down --------------------------------------------------------------------


def seed_ids(b: Bench) -> None:
    flavors = checked(b.http.get("/flavors/detail"))["flavors"]
    b.flavor_id = id_named(flavors, FLAVOR, "flavor")
    b.flavor_ram_mb = int(next(f["ram"] for f in flavors if str(f["id"]) == b.flavor_id))
    b.image_id = id_named(checked(b.http.get("/images"))["images"], IMAGE, "image")


def remove_our_domains(b: Bench) -> None:
    left = remove_domains(b.prefix)
    for uuid in b.created:
        left += remove_domains(domain_name(uuid))
    if left:
        print(f"# cleanup: removed leftover guests {', '.join(left)}")


@contextlib.contextmanager
def bench_run() -> Iterator[Bench]:
    """libvirtd, test image, `filemem up` in a fresh state dir; on exit (Ctrl-C too) delete the
    servers through the API, stop `filemem up`, remove leftover domains and every file."""
    start_libvirt()
    image = ensure_test_image(DEFAULT_DEST, log=lambda line: print(f"# {line}"))
    run_dir = mkdir_0755(mkdir_0755(SCRATCH) / uuidlib.uuid4().hex[:12])
    state = mkdir_0755(run_dir / "state")
    prefix = f"{TAG}-{run_dir.name[:6]}-"
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)  # lookups of absent domains
    conn = libvirt.open(URI)
    watch = OwnedWatch(prefix)
    watch.start()
    b: Bench | None = None
    try:
        with (
            filemem_up(state) as (endpoint, token),
            httpx.Client(
                base_url=f"{endpoint}/v2.1",
                timeout=30.0,
                headers={"X-Auth-Token": token, "OpenStack-API-Version": "compute 2.1"},
            ) as http,
        ):
            b = Bench(run_dir, state, prefix, image.ready_line, watch, http, conn)
            seed_ids(b)
            print(f"# filemem up: API {endpoint}, state {state}", flush=True)
            try:
                yield b
            finally:
                delete_leftovers(b)
    finally:
        watch.stop()
        if b is not None:
            remove_our_domains(b)
        else:
            remove_domains(prefix)
        conn.close()
        if watch.all():
            print(
                f"# NOTE: other guests (not this benchmark's) ran meanwhile: "
                f"{', '.join(sorted(watch.all()))}"
            )
        shutil.rmtree(run_dir, ignore_errors=True)


def store_line() -> str:
    """The backing store both A and B allocate guest memory in (shared with other tests)."""
    backing = store.effective_memory_backing_dir(
        store.read_qemu_conf(Path("/etc/libvirt/qemu.conf"))
    )
    usage = shutil.disk_usage(backing)
    return (
        f"memory_backing_dir {backing}: {usage.free // 2**20} MiB free of "
        f"{usage.total // 2**20} MiB"
    )


DESCRIPTION = f"""\
Boot overhead through the API: starts `filemem up` (API, scheduler, embedded Placement, agent)
on loopback with a scratch state dir, then A = POST /v2.1/servers ({FLAVOR}, {IMAGE}) until
the guest's console log prints the ready line, vs B = `virsh create` of the identical domain
XML (the A guest's `dumpxml --inactive` with a fresh name, uuid and console path) until the
same line. Pairs run interleaved (AB, BA, ...); prints per-run times, medians, the median
per-pair ratio A/B and the ratio of medians (target <= {TARGET:.2f}), and where A's time goes.
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(
        "api_boot_overhead",
        DESCRIPTION,
        runs=10,
        runs_help="measured pairs",
        warmup=1,
        warmup_help="pairs run first and dropped",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with bench_run() as b:
        print(
            f"# {args.runs} pairs (+{args.warmup} warm-up), flavor {FLAVOR} "
            f"({b.flavor_ram_mb} MiB), file_backed_memory={FILE_BACKED_MEMORY_MB} MiB, "
            "virt_type=qemu, console polled every 20 ms",
            flush=True,
        )
        print(f"# {store_line()}", flush=True)
        pairs = run_pairs(b, args.warmup, args.runs)
    print()
    report(pairs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
