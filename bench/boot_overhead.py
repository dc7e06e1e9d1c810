"""Boot overhead: filemem's spawn (config to console ready) vs `virsh create` of the same XML."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench._common import (
    AllocationMode,
    Session,
    add_guest_args,
    bench_parser,
    domain_xml,
    interleaved,
    kernel_image,
    median,
    ms,
    new_uuid,
    session,
    table,
    virsh,
    wait_for_line,
)
from filemem.common.guests import Flavor
from filemem.virt.libvirt.driver import LibvirtDriver

TARGET = 1.10
READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Sample:
    """Seconds from just before the start call: until the call returned, until the ready line."""

    call_s: float
    ready_s: float


def boot_filemem(s: Session, driver: LibvirtDriver, flavor: Flavor, label: str) -> Sample:
    """A: driver.spawn (config, capacity guard, define, start) until the console says ready."""
    name, uuid = s.guest_name(label), new_uuid()
    image = kernel_image(s.image)
    try:
        t0 = time.perf_counter()
        driver.spawn(name, uuid, flavor, image)
        t1 = time.perf_counter()
        t2 = wait_for_line(driver.console_log(uuid), s.image.ready_line, READY_TIMEOUT_S)
    finally:
        driver.destroy(uuid)
    return Sample(call_s=t1 - t0, ready_s=t2 - t0)


def boot_virsh(s: Session, driver: LibvirtDriver, flavor: Flavor, label: str) -> Sample:
    """B: the identical XML (fresh name, uuid, console path) through `virsh create`."""
    name, uuid = s.guest_name(label), new_uuid()
    workdir = s.virsh_dir(name)
    console = workdir / "console.log"
    xml_path = workdir / "domain.xml"
    xml_path.write_text(
        domain_xml(name, uuid, flavor, kernel_image(s.image), console, driver.host_facts())
    )
    started = False
    try:
        t0 = time.perf_counter()
        virsh("create", str(xml_path))
        t1 = time.perf_counter()
        started = True
        t2 = wait_for_line(console, s.image.ready_line, READY_TIMEOUT_S)
    finally:
        if started:
            virsh("destroy", name)
        shutil.rmtree(workdir, ignore_errors=True)
    return Sample(call_s=t1 - t0, ready_s=t2 - t0)


Booter = Callable[[Session, LibvirtDriver, Flavor, str], Sample]


@dataclass(frozen=True)
class Pair:
    order: str  # "AB" or "BA"
    a: Sample
    b: Sample
    others: frozenset[str]  # other guests seen running during the pair (noise)


def run_pair(s: Session, driver: LibvirtDriver, flavor: Flavor, i: int) -> Pair:
    """Even pairs run A then B, odd ones B then A, so drift hits both alike."""
    order: list[tuple[str, Booter]] = [("A", boot_filemem), ("B", boot_virsh)]
    if i % 2:
        order.reverse()
    got: dict[str, Sample] = {}
    t0 = time.perf_counter()
    for which, boot in order:
        got[which] = boot(s, driver, flavor, f"{which.lower()}{i}")
    return Pair(
        "".join(which for which, _ in order),
        got["A"],
        got["B"],
        frozenset(s.watch.between(t0, time.perf_counter())),
    )


def run_pairs(
    s: Session, driver: LibvirtDriver, flavor: Flavor, warmup: int, runs: int
) -> list[Pair]:
    return interleaved(warmup, runs, lambda i: run_pair(s, driver, flavor, i))


def ratios(pairs: list[Pair]) -> tuple[float, float]:
    """Median over pairs of A/B: (to the ready line, the start call alone)."""
    return (
        median([p.a.ready_s / p.b.ready_s for p in pairs]),
        median([p.a.call_s / p.b.call_s for p in pairs]),
    )


def pair_table(pairs: list[Pair]) -> str:
    rows = [
        [
            str(i),
            p.order,
            ms(p.a.ready_s),
            ms(p.b.ready_s),
            f"{p.a.ready_s / p.b.ready_s:.3f}",
            ms(p.a.call_s),
            ms(p.b.call_s),
            f"{p.a.call_s / p.b.call_s:.3f}",
            "*" if p.others else "",
        ]
        for i, p in enumerate(pairs, start=1)
    ]
    ready_ratio, call_ratio = ratios(pairs)
    rows.append(
        [
            "median",
            "",
            ms(median([p.a.ready_s for p in pairs])),
            ms(median([p.b.ready_s for p in pairs])),
            f"{ready_ratio:.3f}",
            ms(median([p.a.call_s for p in pairs])),
            ms(median([p.b.call_s for p in pairs])),
            f"{call_ratio:.3f}",
            "",
        ]
    )
    return table(
        [
            "run",
            "order",
            "A ready ms",
            "B ready ms",
            "A/B",
            "A call ms",
            "B call ms",
            "A/B",
            "noisy",
        ],
        rows,
    )


def report(pairs: list[Pair]) -> bool:
    """Print the per-run table and medians; True when the median ready ratio meets TARGET."""
    print(pair_table(pairs))
    ready_ratio, call_ratio = ratios(pairs)
    a_ready, b_ready = median([p.a.ready_s for p in pairs]), median([p.b.ready_s for p in pairs])
    call_diff = median([p.a.call_s for p in pairs]) - median([p.b.call_s for p in pairs])
    ok = ready_ratio <= TARGET
    print(
        f"\nboot to ready  (A spawn -> ready line / B virsh create -> ready line): "
        f"median ratio {ready_ratio:.3f} (ratio of medians {a_ready / b_ready:.3f}); "
        f"target <= {TARGET:.2f}: {'MET' if ok else 'NOT MET'}"
    )
    print(
        f"start call only (A spawn() returned / B `virsh create` returned): "
        f"median ratio {call_ratio:.3f}; difference of medians {ms(call_diff)} ms"
    )
    quiet = [p for p in pairs if not p.others]
    if len(quiet) < len(pairs):
        line = "none" if not quiet else "ready {:.3f}, call {:.3f}".format(*ratios(quiet))
        print(
            f"* = other guests ran during the pair; quiet pairs only ({len(quiet)}/"
            f"{len(pairs)}): median ratios {line}"
        )
    return ok


DESCRIPTION = f"""\
Boot overhead: A = filemem's LibvirtDriver.spawn (config, capacity guard, define, start) until
the guest console prints the ready line, vs B = `virsh create` of the identical domain XML until
the same line. Pairs run interleaved (AB, BA, ...); prints per-run times, medians and the median
ratio A/B (target <= {TARGET:.2f}), plus the same ratio for the start call alone (spawn() vs
`virsh create` returning).
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser(
        "boot_overhead",
        DESCRIPTION,
        runs=10,
        runs_help="measured pairs",
        warmup=1,
        warmup_help="pairs run first and dropped",
    )
    add_guest_args(parser)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    allocation: AllocationMode = args.allocation
    flavor = Flavor(name=f"bench-{args.memory_mb}", vcpus=1, memory_mb=args.memory_mb)
    with session("fmbo") as s:
        driver = s.driver(args.file_backed_memory, allocation)
        facts = driver.host_facts()
        print(
            f"# {args.runs} pairs (+{args.warmup} warm-up), {args.memory_mb} MiB guests, "
            f"file_backed_memory={args.file_backed_memory} MiB, allocation={allocation}, "
            f"discard={facts.discard_supported}, virt_type={facts.virt_type}, "
            "console polled every 20 ms"
        )
        try:
            pairs = run_pairs(s, driver, flavor, args.warmup, args.runs)
        finally:
            driver.connection.close()
        print()
        report(pairs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
