"""Stop cost: device bytes written and stop latency for 160 MiB dirty guest memory, ± discard."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from bench._common import (
    MIB,
    Session,
    add_guest_args,
    bench_parser,
    domain_xml,
    kernel_image,
    median,
    new_uuid,
    run_sync,
    session,
    table,
    virsh,
    wait_for_line,
)
from filemem.common.guests import Flavor, HostFacts, Image
from filemem.virt.libvirt.driver import LibvirtDriver
from filemem.virt.xml.domain import Domain

TOUCH_TIMEOUT_S = 300.0
# /sys/block/<dev>/stat (Documentation/block/stat.rst): 0-based field indexes.
SECTORS_WRITTEN = 6
SECTORS_DISCARDED = 13
SECTOR = 512


class NoDiscardDriver(LibvirtDriver):
    """The real driver, on a host whose libvirt/QEMU could not discard (as before 4.4/2.10).

    Only host_facts() changes, so spawn() still runs its whole path (config, capacity guard,
    define, start) and build_domain simply leaves <discard/> out, as it would on such a host.
    """

    def host_facts(self) -> HostFacts:
        return dataclasses.replace(super().host_facts(), discard_supported=False)


class Variant(Protocol):
    label: str

    def start(self, name: str, uuid: str, image: Image) -> Path:
        """Boot the guest; returns its console log."""
        ...

    def stop(self, name: str, uuid: str) -> None: ...


@dataclass
class FilememVariant:
    label: str
    driver: LibvirtDriver
    flavor: Flavor

    def start(self, name: str, uuid: str, image: Image) -> Path:
        self.driver.spawn(name, uuid, self.flavor, image)
        return self.driver.console_log(uuid)

    def stop(self, name: str, uuid: str) -> None:
        self.driver.destroy(uuid)


@dataclass
class VirshVariant:
    label: str
    session: Session
    host: HostFacts
    flavor: Flavor

    def start(self, name: str, uuid: str, image: Image) -> Path:
        workdir = self.session.virsh_dir(name)
        console = workdir / "console.log"
        xml_path = workdir / "domain.xml"
        xml_path.write_text(domain_xml(name, uuid, self.flavor, image, console, self.host))
        virsh("create", str(xml_path))
        return console

    def stop(self, name: str, uuid: str) -> None:
        virsh("destroy", name)


@dataclass(frozen=True)
class DeviceStat:
    """The block device holding a path, and its cumulative sector counters."""

    sysfs_stat: Path

    @classmethod
    def for_path(cls, path: Path) -> DeviceStat:
        st_dev = path.stat().st_dev
        node = Path(f"/sys/dev/block/{os.major(st_dev)}:{os.minor(st_dev)}")
        if not (node / "stat").is_file():
            raise SystemExit(
                f"{path} is on device {os.major(st_dev)}:{os.minor(st_dev)}, which has no "
                f"{node}/stat (tmpfs, btrfs or overlay?): no device counters to read"
            )
        # A partition's own stat file has the same fields as its disk's; use the partition.
        return cls(node / "stat")

    def device_name(self) -> str:
        return self.sysfs_stat.parent.resolve().name

    def read(self) -> tuple[int, int]:
        """(bytes written, bytes discarded) since boot."""
        fields = [int(part) for part in self.sysfs_stat.read_text().split()]
        discarded = fields[SECTORS_DISCARDED] if len(fields) > SECTORS_DISCARDED else 0
        return fields[SECTORS_WRITTEN] * SECTOR, discarded * SECTOR


def dirty_bytes() -> int:
    """System-wide Dirty: from /proc/meminfo (page cache waiting for writeback)."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Dirty:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass(frozen=True)
class StopSample:
    variant: str
    xml_discard: bool
    allocated_bytes: int | None  # the memory file's st_blocks * 512 just before the stop
    dirty_bytes: int  # system-wide, just before the stop
    latency_s: float  # the stop call alone
    written_bytes: int  # device bytes written during stop + sync
    discarded_bytes: int  # device bytes discarded during stop + sync
    file_removed: bool
    others: frozenset[str]  # other guests seen running from boot to after the stop (noise)


def xml_has_discard(observer: LibvirtDriver, uuid: str) -> bool:
    """Whether the running domain's live XML has <memoryBacking><discard/>."""
    xml = observer.connection.get().lookupByUUIDString(uuid).XMLDesc(0)
    backing = Domain.from_xml(xml).memory_backing
    return backing is not None and backing.discard


def measure(
    v: Variant,
    observer: LibvirtDriver,
    dev: DeviceStat,
    s: Session,
    touch_mb: int,
    presync: bool,
    label: str,
) -> StopSample:
    """Boot, wait until touch_mb MiB are written, then time the stop and count device writes."""
    name, uuid = s.guest_name(label), new_uuid()
    stopped = False
    begin = time.perf_counter()
    try:
        console = v.start(name, uuid, kernel_image(s.image, touch_mb=touch_mb))
        wait_for_line(console, s.image.touched_line(touch_mb), TOUCH_TIMEOUT_S)
        discard = xml_has_discard(observer, uuid)
        memory_file = observer.get_guest(uuid).memory_file
        if DeviceStat.for_path(observer.memory_backing_dir()) != dev:
            raise RuntimeError(
                "the backing store's device changed during the run (something "
                "mounted over memory_backing_dir): counters would be wrong"
            )
        if presync:
            run_sync()
        dirty = dirty_bytes()
        written0, discarded0 = dev.read()
        t0 = time.perf_counter()
        v.stop(name, uuid)
        t1 = time.perf_counter()
        stopped = True
        run_sync()
        written1, discarded1 = dev.read()
    finally:
        if not stopped:
            with contextlib.suppress(Exception):
                v.stop(name, uuid)
        shutil.rmtree(s.run_dir / "virsh" / name, ignore_errors=True)
    return StopSample(
        variant=v.label,
        xml_discard=discard,
        allocated_bytes=None if memory_file is None else memory_file.allocated_bytes,
        dirty_bytes=dirty,
        latency_s=t1 - t0,
        written_bytes=written1 - written0,
        discarded_bytes=discarded1 - discarded0,
        file_removed=memory_file is None or not memory_file.path.exists(),
        others=frozenset(s.watch.between(begin, time.perf_counter())),
    )


def mib(n: float | None) -> str:
    return "?" if n is None else f"{n / MIB:.1f}"


def ratio(value: float, base: float) -> str:
    return f"{value / base:.2f}" if base > 0 else "n/a"


def per_run_table(samples: list[tuple[int, StopSample]]) -> str:
    rows = [
        [
            str(run),
            x.variant,
            "yes" if x.xml_discard else "no",
            mib(x.allocated_bytes),
            mib(x.dirty_bytes),
            f"{x.latency_s * 1000:.0f}",
            mib(x.written_bytes),
            mib(x.discarded_bytes),
            "yes" if x.file_removed else "NO",
            "*" if x.others else "",
        ]
        for run, x in samples
    ]
    return table(
        [
            "run",
            "variant",
            "discard",
            "alloc MiB",
            "dirty MiB",
            "stop ms",
            "written MiB",
            "discarded MiB",
            "pc.ram gone",
            "noisy",
        ],
        rows,
    )


def summary_table(samples: list[StopSample], labels: list[str], base_label: str) -> str:
    def med(label: str, key: str) -> float:
        return median([float(getattr(x, key)) for x in samples if x.variant == label])

    base_ms, base_written = med(base_label, "latency_s"), med(base_label, "written_bytes")
    rows = [
        [
            label,
            f"{med(label, 'latency_s') * 1000:.0f}",
            ratio(med(label, "latency_s"), base_ms),
            mib(med(label, "written_bytes")),
            ratio(med(label, "written_bytes"), base_written),
            mib(med(label, "discarded_bytes")),
            mib(med(label, "dirty_bytes")),
        ]
        for label in labels
    ]
    return table(
        [
            "variant (medians)",
            "stop ms",
            "x virsh",
            "written MiB",
            "x virsh",
            "discarded MiB",
            "dirty MiB before",
        ],
        rows,
    )


def run_all(
    variants: list[Variant],
    observer: LibvirtDriver,
    dev: DeviceStat,
    s: Session,
    args: argparse.Namespace,
) -> list[tuple[int, StopSample]]:
    """args.runs rounds; round i starts with variant i mod 3 so each takes every slot."""
    samples: list[tuple[int, StopSample]] = []
    for run in range(1, args.runs + 1):
        shift = (run - 1) % len(variants)
        for index, v in enumerate(variants[shift:] + variants[:shift]):
            sample = measure(v, observer, dev, s, args.touch_mb, args.presync, f"r{run}v{index}")
            print(
                f"# run {run}/{args.runs}: {v.label} stopped in {sample.latency_s * 1000:.0f} ms",
                flush=True,
            )
            samples.append((run, sample))
    return samples


DESCRIPTION = """\
Stop cost of a file-backed guest that has just dirtied --touch-mb MiB: bytes written to the
backing store's block device (sysfs counters, read before the stop and after the stop + sync)
and the stop call's latency, for
  (a) filemem with <discard/> stopped by driver.destroy,
  (b) filemem on a host without discard support (driver subclass whose host_facts() says
      discard_supported=False) stopped by driver.destroy,
  (c) the with-discard XML started by `virsh create` and stopped by `virsh destroy`.
Variants are interleaved; medians and ratios vs (c) are printed.
"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = bench_parser("stop_cost", DESCRIPTION, runs=3, runs_help="rounds of all 3 variants")
    parser.add_argument(
        "--touch-mb",
        type=int,
        default=160,
        metavar="MIB",
        help="MiB the guest dirties, below --memory-mb (default 160)",
    )
    add_guest_args(parser)
    parser.add_argument(
        "--presync",
        action="store_true",
        help="sync before the stop too: flushes the guest's dirty memory first, "
        "so only what the stop itself writes is counted",
    )
    args = parser.parse_args(argv)
    if not 0 < args.touch_mb < args.memory_mb:
        parser.error("--touch-mb must be > 0 and < --memory-mb")
    return args


def describe(args: argparse.Namespace, driver: LibvirtDriver, dev: DeviceStat) -> None:
    print(
        f"# {args.runs} rounds x 3 variants, {args.memory_mb} MiB guests dirtying "
        f"{args.touch_mb} MiB, file_backed_memory={args.file_backed_memory} MiB, "
        f"allocation={args.allocation}, host discard_supported="
        f"{driver.host_facts().discard_supported}, pre-stop sync={args.presync}"
    )
    print(
        f"# backing store {driver.memory_backing_dir()} is on /dev/{dev.device_name()} "
        f"({dev.sysfs_stat}); written/discarded = counter delta over stop + sync. If that "
        "device also holds / (as here), other writers add noise."
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    flavor = Flavor(name=f"bench-{args.memory_mb}", vcpus=1, memory_mb=args.memory_mb)
    with session("fmsc") as s:
        settings = s.settings(args.file_backed_memory, args.allocation)
        with_discard, without = LibvirtDriver(settings), NoDiscardDriver(settings)
        dev = DeviceStat.for_path(with_discard.memory_backing_dir())
        describe(args, with_discard, dev)
        variants: list[Variant] = [
            FilememVariant("filemem discard", with_discard, flavor),
            FilememVariant("filemem no-discard", without, flavor),
            VirshVariant("virsh destroy", s, with_discard.host_facts(), flavor),
        ]
        try:
            samples = run_all(variants, with_discard, dev, s, args)
        finally:
            with_discard.connection.close()
            without.connection.close()
        print()
        print(per_run_table(samples))
        if any(x.others for _, x in samples):
            print("* = other guests (not this benchmark's) ran during that sample")
        print()
        print(summary_table([x for _, x in samples], [v.label for v in variants], "virsh destroy"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
