"""Host readings for the density benches: folio sizes, block device writes, OOM kills, versions."""

from __future__ import annotations

import argparse
import os
import platform
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench._common import Session
from filemem.backing.residency import SECTOR_BYTES, block_device_of, sectors_written
from filemem.virt.libvirt import partition
from filemem.virt.libvirt.driver import LibvirtDriver

PAGE = os.sysconf("SC_PAGE_SIZE")
PAGE_KIB = PAGE // 1024
PFN_MASK = (1 << 55) - 1  # pagemap bits 0-54
KPF_COMPOUND_HEAD = 1 << 15  # include/uapi/linux/kernel-page-flags.h
KPF_COMPOUND_TAIL = 1 << 16


def kernel_oom_kills(part: partition.Partition) -> list[int] | None:
    """partition.oom_killed_pids over dmesg; None if the kernel log cannot be read."""
    try:
        log = subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return partition.oom_killed_pids(log, part)


@dataclass(frozen=True)
class Folios:
    """How the page cache holds the part of a memory file a process has mapped in."""

    mapped_pages: int
    in_large_folios: int  # pages that belong to a folio larger than one page
    folios: int

    @property
    def large_share(self) -> float:
        return self.in_large_folios / self.mapped_pages if self.mapped_pages else 0.0

    @property
    def mean_kib(self) -> float:
        return self.mapped_pages * PAGE_KIB / self.folios if self.folios else 0.0


def mapped_folios(pid: int, path: Path) -> Folios | None:
    """Folio sizes behind `pid`'s mapping of `path`, from /proc/<pid>/pagemap and
    /proc/kpageflags (root only; None without PFNs or without the mapping).

    Reclaim, writeback and read-in work on whole folios, so their size is the granularity at
    which a file-backed guest's memory moves between RAM and the store."""
    try:
        maps = Path(f"/proc/{pid}/maps").read_text()
        ranges = [
            tuple(int(x, 16) for x in line.split()[0].split("-"))
            for line in maps.splitlines()
            if line.endswith(f" {path}")
        ]
        if not ranges:
            return None
        pagemap = os.open(f"/proc/{pid}/pagemap", os.O_RDONLY)
        flags = os.open("/proc/kpageflags", os.O_RDONLY)
    except OSError:
        return None
    mapped = large = heads = 0
    try:
        for lo, hi in ranges:
            entries = os.pread(pagemap, (hi - lo) // PAGE * 8, lo // PAGE * 8)
            for (entry,) in struct.iter_unpack("<Q", entries):
                if not entry >> 63 & 1:
                    continue
                pfn = entry & PFN_MASK
                if not pfn:
                    return None  # PFNs hidden: not root
                (kflags,) = struct.unpack("<Q", os.pread(flags, 8, pfn * 8))
                mapped += 1
                if kflags & (KPF_COMPOUND_HEAD | KPF_COMPOUND_TAIL):
                    large += 1
                    heads += bool(kflags & KPF_COMPOUND_HEAD)
    except OSError:
        return None
    finally:
        os.close(pagemap)
        os.close(flags)
    return Folios(mapped, large, heads + mapped - large)


Device = tuple[int, int]


def written_bytes(device: Device | None) -> int | None:
    """Bytes written so far to block device (major, minor). The device is resolved once per
    run: other tests mount stores over memory_backing_dir, which must not switch counters."""
    if device is None:
        return None
    try:
        text = Path(f"/sys/dev/block/{device[0]}:{device[1]}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    return sectors_written(text) * SECTOR_BYTES


def delta(before: int | None, after: int | None) -> int | None:
    return None if before is None or after is None or after < before else after - before


def environment(s: Session, args: argparse.Namespace) -> dict[str, Any]:
    probe = LibvirtDriver(s.settings(0, "immediate"))
    try:
        (lib, qemu), backing_dir = probe.versions(), probe.memory_backing_dir()
    finally:
        probe.connection.close()
    device = block_device_of(backing_dir)
    shared = [
        str(p)
        for p in (Path("/"), Path("/var/log"), s.run_dir)
        if device is not None and block_device_of(p) == device
    ]
    if device != block_device_of(backing_dir.parent):
        print(
            f"# WARNING: something is mounted over {backing_dir} (another test's store?); "
            "the run measures that store",
            flush=True,
        )
    return {
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "libvirt": ".".join(map(str, lib)),
        "qemu": ".".join(map(str, qemu)),
        "virt_type": "qemu (TCG)",
        "memory_backing_dir": str(backing_dir),
        "backing_device": None if device is None else f"{device[0]}:{device[1]}",
        "device_shared_with": shared,
    }
