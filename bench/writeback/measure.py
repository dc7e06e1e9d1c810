"""Writeback's measurement: one set of guests, a window per setting, background rates."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import MIB, Session
from bench.density.cases import CaseSpec, GuestRun
from bench.density.probes import Device, delta, kernel_oom_kills, mapped_folios, written_bytes
from bench.density.run import FillWatch, spawn_all
from bench.writeback.sysctls import EXPIRE, WRITEBACK, Setting, Sysctls, dotted, settings
from devtools.memcheck import MemcheckPass
from filemem.backing.residency import block_device_of
from filemem.common.guests import Flavor, Image
from filemem.exceptions import FilememError
from filemem.virt.libvirt import partition
from filemem.virt.libvirt.driver import LibvirtDriver

MEMINFO = Path("/proc/meminfo")
SAMPLE_S = 2.0
# Past expire + writeback interval, so a window after a sync holds at least one periodic flush.
FLUSH_MARGIN_S = 15
SETTLE_S = 10  # after lowering the limit: let the reclaim burst pass before the sync


def meminfo_kib() -> dict[str, int]:
    values = {}
    for line in MEMINFO.read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("Dirty", "Writeback"):
            values[name] = int(rest.split()[0])
    return values


@dataclass
class Window:
    setting: Setting
    pressure: bool
    sysctls: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    write_bytes: int | None = None
    passes: list[int] = field(default_factory=list)  # per guest, in the window
    hot_ms: list[int] = field(default_factory=list)
    dirty_kib: list[int] = field(default_factory=list)
    writeback_kib: list[int] = field(default_factory=list)
    cache_bytes: list[int] = field(default_factory=list)
    failcnt: int = 0
    alive: int = 0
    store_changed: bool = False

    @property
    def label(self) -> str:
        return f"{self.setting.label} / {'pressure' if self.pressure else 'no limit'}"


@dataclass
class Background:
    what: str
    seconds: float
    write_bytes: int | None

    @property
    def bytes_per_s(self) -> float | None:
        return (
            None
            if self.write_bytes is None or self.seconds < 1
            else self.write_bytes / self.seconds
        )


def window_seconds(args: argparse.Namespace, pressure: bool, sysctls: dict[str, int]) -> float:
    if pressure:
        return float(args.duration)
    period = (sysctls[dotted(EXPIRE)] + sysctls[dotted(WRITEBACK)]) / 100
    return max(float(args.duration), period + FLUSH_MARGIN_S)


def pass_lines(run: GuestRun) -> list[MemcheckPass]:
    return [line for line in run.read_lines() if isinstance(line, MemcheckPass)]


def background(what: str, seconds: float, device: Device | None) -> Background:
    os.sync()
    before, start = written_bytes(device), time.perf_counter()
    time.sleep(seconds)
    bg = Background(what, time.perf_counter() - start, delta(before, written_bytes(device)))
    rate = bg.bytes_per_s
    print(f"#   background ({what}): {'-' if rate is None else f'{rate * 60 / MIB:.1f}'} MiB/min")
    return bg


def measure_window(
    window: Window,
    runs: Sequence[GuestRun],
    part: partition.Partition,
    sysctls: Sysctls,
    args: argparse.Namespace,
    device: Device | None,
    backing_dir: Path,
) -> None:
    window.sysctls = sysctls.apply(window.setting)
    seconds = window_seconds(args, window.pressure, window.sysctls)
    print(f"# {window.label}: {window.setting.describe()}, {seconds:.0f} s", flush=True)
    os.sync()  # a clean start: no dirty pages carried over from the previous window
    before = {r.uuid: len(pass_lines(r)) for r in runs}
    failcnt = partition.partition_memory_usage(part).failcnt
    written_before, start = written_bytes(device), time.perf_counter()
    end = start + seconds
    while time.perf_counter() < end:
        info = meminfo_kib()
        window.dirty_kib.append(info.get("Dirty", 0))
        window.writeback_kib.append(info.get("Writeback", 0))
        window.cache_bytes.append(partition.partition_memory_usage(part).cache_bytes)
        time.sleep(max(0.0, min(SAMPLE_S, end - time.perf_counter())))
    window.write_bytes = delta(written_before, written_bytes(device))
    window.seconds = time.perf_counter() - start
    window.failcnt = partition.partition_memory_usage(part).failcnt - failcnt
    window.store_changed = block_device_of(backing_dir) != device
    window.alive = sum(1 for r in runs if r.running())
    for run in runs:
        new = pass_lines(run)[before[run.uuid] :]
        window.passes.append(len(new))
        window.hot_ms.extend(p.ms for p in new if not p.verified)
    print(
        f"#   {sum(window.passes)} passes, "
        f"{(window.write_bytes or 0) / MIB:.0f} MiB written, {window.alive} alive",
        flush=True,
    )


@dataclass
class Run:
    windows: list[Window] = field(default_factory=list)
    backgrounds: list[Background] = field(default_factory=list)
    boot_write_bytes: int | None = None
    folios: list[dict[str, Any]] = field(default_factory=list)
    oom_kills: int | None = None
    restored: str = ""

    def background_rate(self) -> float | None:
        """Bytes/s the other writers on the store's device wrote (mean of the windows)."""
        rates = [r for b in self.backgrounds if (r := b.bytes_per_s) is not None]
        return statistics.fmean(rates) if rates else None


def run_all(s: Session, args: argparse.Namespace, device: Device | None, out: Run) -> None:
    name = s.guest_name("wb")
    part = partition.ensure_partition(name, None)
    settings_ = dataclasses.replace(
        s.settings(args.guests * args.guest_mb * 2, args.allocation),
        guest_partition=name,
        guest_memory_limit_mb=0,  # lowered later, once the guests have filled
    )
    driver = LibvirtDriver(settings_)
    backing_dir = driver.memory_backing_dir()
    sysctls = Sysctls()
    print(
        "# sysctls found: " + ", ".join(f"{dotted(k)}={v}" for k, v in sysctls.found.items()),
        flush=True,
    )
    runs: list[GuestRun] = []
    try:
        out.backgrounds.append(background("before boot", args.background_s, device))
        cmdline = s.image.memcheck_cmdline(
            args.mem_mb, args.hot_mb, args.verify_every, pass_delay_ms=args.pass_delay_ms
        )
        image = Image(kind="kernel", kernel=s.image.kernel, initrd=s.image.initrd, cmdline=cmdline)
        flavor = Flavor(name=f"writeback-{args.guest_mb}", vcpus=1, memory_mb=args.guest_mb)
        spec = CaseSpec("wb", "file", 1.0, args.guests, limited=False)
        at_start = written_bytes(device)
        with FillWatch() as watch:
            runs = spawn_all(s, driver, spec, image, flavor, watch)
            deadline = time.perf_counter() + args.fill_timeout
            while any(r.filled_at is None and r.running() for r in runs):
                if time.perf_counter() > deadline:
                    print(f"#   not all filled after {args.fill_timeout} s; measuring anyway")
                    break
                time.sleep(0.2)
        out.boot_write_bytes = delta(at_start, written_bytes(device))
        booted = [r for r in runs if r.spawn_error is None]
        measure_windows(booted, name, part, sysctls, args, device, backing_dir, out)
        read_at_end(booted, part, out)
        # Paused guests dirty nothing; the sync inside writes what they left dirty first.
        conn = driver.connection.get()
        for run in booted:
            with contextlib.suppress(Exception):
                conn.lookupByUUIDString(run.uuid).suspend()
        out.restored = sysctls.restore()
        print(out.restored, flush=True)
        out.backgrounds.append(background("guests paused", args.background_s, device))
    finally:
        if not out.restored:
            out.restored = sysctls.restore()
            print(out.restored, flush=True)
        for run in runs:
            if run.memory_dir_fd is not None:
                os.close(run.memory_dir_fd)
            with contextlib.suppress(FilememError):
                driver.destroy(run.uuid)
        driver.connection.close()
        with contextlib.suppress(FilememError):
            partition.ensure_partition(name, None)
            partition.remove_partition(part, wait=30.0)


def measure_windows(
    booted: Sequence[GuestRun],
    name: str,
    part: partition.Partition,
    sysctls: Sysctls,
    args: argparse.Namespace,
    device: Device | None,
    backing_dir: Path,
    out: Run,
) -> None:
    """Every setting without a limit, then every setting with the partition limited."""
    for pressure in (False, True):
        if pressure:
            partition.ensure_partition(name, args.limit_mb * MIB)
            print(f"# partition limited to {args.limit_mb} MiB", flush=True)
            time.sleep(SETTLE_S)
        for setting in settings(args):
            window = Window(setting, pressure)
            out.windows.append(window)
            measure_window(window, booted, part, sysctls, args, device, backing_dir)


def read_at_end(booted: Sequence[GuestRun], part: partition.Partition, out: Run) -> None:
    """Folio sizes of the running guests' memory files and the partition's OOM kills."""
    for run in booted:
        if run.running() and run.pid is not None and run.memory_file is not None:
            folios = mapped_folios(run.pid, run.memory_file)
            if folios is not None:
                out.folios.append(dataclasses.asdict(folios))
    out.oom_kills = None if (k := kernel_oom_kills(part)) is None else len(k)
