"""Writeback: what a file-backed guest rewriting its memory writes to the store, per sysctl."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from bench._common import MIB, REPO, Session, at_least, bench_parser, session, table
from bench.density_cases import GUEST_OVERHEAD_MB, CaseSpec, GuestRun
from bench.density_probes import (
    Device,
    delta,
    environment,
    kernel_oom_kills,
    mapped_folios,
    written_bytes,
)
from bench.density_report import p95
from bench.density_run import FillWatch, spawn_all
from filemem.backing.residency import block_device_of
from filemem.common.guests import Flavor, Image
from filemem.devtools.test_image import MemcheckPass
from filemem.exceptions import FilememError
from filemem.virt.libvirt import partition
from filemem.virt.libvirt.driver import LibvirtDriver

RESULTS = REPO / "bench" / "results"
SYSCTL = Path("/proc/sys")
MEMINFO = Path("/proc/meminfo")
SAMPLE_S = 2.0
# Past expire + writeback interval, so a window after a sync holds at least one periodic flush.
FLUSH_MARGIN_S = 15
SETTLE_S = 10  # after lowering the limit: let the reclaim burst pass before the sync
EXPIRE = "vm/dirty_expire_centisecs"
WRITEBACK = "vm/dirty_writeback_centisecs"
BG_BYTES = "vm/dirty_background_bytes"
BG_RATIO = "vm/dirty_background_ratio"
KNOBS = (EXPIRE, WRITEBACK, BG_BYTES, BG_RATIO)

DESCRIPTION = f"""\
Writeback: MiB a file-backed guest that keeps rewriting its memory writes to the backing
store's block device, under each kernel writeback setting, with and without memory pressure.

One set of --guests guests (--guest-mb MiB, file-backed) runs the test image's memcheck: it
fills --mem-mb MiB, then rewrites the first --hot-mb MiB every pass (--pass-delay-ms between
passes). The same guests are measured under each writeback setting:
  defaults    the sysctls as found
  expire5m    vm.dirty_expire_centisecs=--expire-cs, vm.dirty_writeback_centisecs=--writeback-cs
  expire5m+bg expire5m and vm.dirty_background_bytes=--background-mb MiB
first with no memory limit on their partition (no pressure), then with the partition limited to
--limit-mb (pressure: eviction writes dirty pages whatever the sysctls say). Every window starts
with a sync (all dirty pages clean), so windows do not inherit each other's dirty pages; a
no-pressure window lasts at least expire + writeback interval + {FLUSH_MARGIN_S} s so it holds
a periodic flush, a pressure window --duration s.

The store is usually on the root disk, shared with other writers: a background window before
the guests boot and one with them paused (after a sync) measure the other writers' rate, which
is subtracted. Every sysctl changed is restored at the end (Ctrl-C and SIGTERM too) and the
restored values printed. Writes {RESULTS.relative_to(REPO)}/writeback.{{txt,json}} (--out-dir).
"""


# -- sysctls ----------------------------------------------------------------------------------


def read_knob(knob: str) -> int:
    return int((SYSCTL / knob).read_text().split()[0])


def write_knob(knob: str, value: int) -> None:
    (SYSCTL / knob).write_text(f"{value}\n")


def dotted(knob: str) -> str:
    return knob.replace("/", ".")


@dataclass(frozen=True)
class Setting:
    label: str
    changes: tuple[tuple[str, int], ...]  # applied over the values found at start

    def describe(self) -> str:
        return ", ".join(f"{dotted(k)}={v}" for k, v in self.changes) or "kernel defaults"


class Sysctls:
    """The writeback sysctls as found; apply a Setting over them, restore them at the end."""

    def __init__(self) -> None:
        self.found = {knob: read_knob(knob) for knob in KNOBS}
        self.changed = False

    def apply(self, setting: Setting) -> dict[str, int]:
        self.changed = True
        self._write_found()
        for knob, value in setting.changes:
            write_knob(knob, value)
        return {dotted(k): read_knob(k) for k in KNOBS}

    def _write_found(self) -> None:
        write_knob(EXPIRE, self.found[EXPIRE])
        write_knob(WRITEBACK, self.found[WRITEBACK])
        # Writing one of bytes/ratio zeroes the other: write the one that was in force.
        if self.found[BG_BYTES]:
            write_knob(BG_BYTES, self.found[BG_BYTES])
        else:
            write_knob(BG_RATIO, self.found[BG_RATIO])

    def restore(self) -> str:
        if not self.changed:
            return "# sysctls: none changed"
        self._write_found()
        now = {k: read_knob(k) for k in KNOBS}
        ok = all(now[k] == self.found[k] for k in KNOBS)
        return f"# sysctls restored{'' if ok else ' (MISMATCH)'}: " + ", ".join(
            f"{dotted(k)}={now[k]}" for k in KNOBS
        )


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so the finally blocks restore sysctls and remove guests."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- measuring --------------------------------------------------------------------------------


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


def settings(args: argparse.Namespace) -> list[Setting]:
    expire = ((EXPIRE, args.expire_cs), (WRITEBACK, args.writeback_cs))
    return [
        Setting("defaults", ()),
        Setting("expire", expire),
        Setting("expire+bg", (*expire, (BG_BYTES, args.background_mb * MIB))),
    ]


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
        for pressure in (False, True):
            if pressure:
                partition.ensure_partition(name, args.limit_mb * MIB)
                print(f"# partition limited to {args.limit_mb} MiB", flush=True)
                time.sleep(SETTLE_S)
            for setting in settings(args):
                window = Window(setting, pressure)
                out.windows.append(window)
                measure_window(window, booted, part, sysctls, args, device, backing_dir)
        for run in booted:
            if run.running() and run.pid is not None and run.memory_file is not None:
                folios = mapped_folios(run.pid, run.memory_file)
                if folios is not None:
                    out.folios.append(dataclasses.asdict(folios))
        out.oom_kills = None if (k := kernel_oom_kills(part)) is None else len(k)
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


# -- reporting --------------------------------------------------------------------------------


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def figures(w: Window, run: Run, args: argparse.Namespace) -> dict[str, Any]:
    guests = max(1, len(w.passes))
    minutes = w.seconds / 60
    bg = run.background_rate()
    raw = None if w.write_bytes is None else w.write_bytes / MIB / guests / minutes
    net = (
        None
        if w.write_bytes is None or bg is None
        else max(0.0, w.write_bytes - bg * w.seconds) / MIB / guests / minutes
    )
    rewritten = sum(w.passes) * args.hot_mb / guests / minutes if minutes else None
    return {
        "setting": w.setting.label,
        "pressure": w.pressure,
        "sysctls": w.sysctls,
        "window_s": w.seconds,
        "write_bytes": w.write_bytes,
        "write_mib_per_guest_min_raw": raw,
        "write_mib_per_guest_min": net,
        "hot_sets_written_per_min": None if net is None else net / args.hot_mb,
        "rewritten_mib_per_guest_min": rewritten,
        "amplification": None if net is None or not rewritten else net / rewritten,
        "passes_per_guest": w.passes,
        "hot_ms_median": statistics.median(w.hot_ms) if w.hot_ms else None,
        "hot_ms_p95": p95(w.hot_ms) if w.hot_ms else None,
        "dirty_mib_mean": statistics.fmean(w.dirty_kib) / 1024 if w.dirty_kib else None,
        "dirty_mib_max": max(w.dirty_kib) / 1024 if w.dirty_kib else None,
        "writeback_mib_mean": statistics.fmean(w.writeback_kib) / 1024 if w.writeback_kib else None,
        "writeback_mib_max": max(w.writeback_kib) / 1024 if w.writeback_kib else None,
        "partition_cache_mib_mean": statistics.fmean(w.cache_bytes) / MIB
        if w.cache_bytes
        else None,
        "partition_failcnt": w.failcnt,
        "alive": w.alive,
        "store_changed": w.store_changed,
    }


def result_table(run: Run, args: argparse.Namespace) -> str:
    rows = []
    for w in run.windows:
        f = figures(w, run, args)
        rows.append(
            [
                w.setting.label,
                "pressure" if w.pressure else "none",
                f"{f['window_s']:.0f}",
                fmt(f["write_mib_per_guest_min"]),
                fmt(f["write_mib_per_guest_min_raw"]),
                fmt(f["hot_sets_written_per_min"], ".2f"),
                fmt(f["rewritten_mib_per_guest_min"], ".0f"),
                fmt(f["amplification"], ".4f"),
                fmt(f["hot_ms_median"], ".0f"),
                fmt(f["hot_ms_p95"], ".0f"),
                f"{fmt(f['dirty_mib_mean'], '.0f')}/{fmt(f['dirty_mib_max'], '.0f')}",
                f"{fmt(f['writeback_mib_mean'], '.1f')}/{fmt(f['writeback_mib_max'], '.0f')}",
                fmt(f["partition_cache_mib_mean"], ".0f"),
                str(f["partition_failcnt"]),
                f"{w.alive}/{len(w.passes)}" + (" DISTURBED" if w.store_changed else ""),
            ]
        )
    return table(
        [
            "setting",
            "limit",
            "window s",
            "write MiB/g/min",
            "raw",
            "hot sets/min",
            "rewritten MiB/g/min",
            "amplif.",
            "hot ms med",
            "p95",
            "Dirty MiB mean/max",
            "Writeback mean/max",
            "cache MiB",
            "failcnt",
            "alive",
        ],
        rows,
    )


def header_lines(env: dict[str, Any], args: argparse.Namespace) -> list[str]:
    return [
        f"# writeback: {args.guests} guests of {args.guest_mb} MiB, file-backed "
        f"({args.allocation}); memcheck fills {args.mem_mb} MiB, rewrites a {args.hot_mb} MiB "
        f"hot set per pass, {args.pass_delay_ms} ms between passes, verifies all every "
        f"{args.verify_every} passes; pressure = partition limit {args.limit_mb} MiB",
        f"# kernel {env['kernel']}, {env['cpus']} CPUs, libvirt {env['libvirt']}, QEMU "
        f"{env['qemu']}, {env['virt_type']}; memory files in {env['memory_backing_dir']} on "
        f"block device {env['backing_device']}"
        + (
            f", shared with {', '.join(env['device_shared_with'])}"
            if env["device_shared_with"]
            else ""
        ),
    ]


def note_lines(run: Run, args: argparse.Namespace) -> list[str]:
    bg = run.background_rate()
    lines = [
        "write MiB/g/min: block device writes in the window minus the background rate, per guest",
        "per minute; raw: before subtracting it. hot sets/min: that over --hot-mb (how many",
        "times a minute the hot set reaches the disk). rewritten: passes x hot set per guest per",
        "minute (every pass, verifying ones too, rewrites the hot set). amplif.: write /",
        "rewritten (below 1: the page cache absorbs rewrites; one dirty 4 KiB page can cost a",
        "whole large folio, which this ratio includes). hot ms: in-guest time of one non-",
        "verifying hot-set pass. Dirty, Writeback: /proc/meminfo (whole host) sampled every",
        f"{SAMPLE_S:g} s. cache MiB: the partition's page cache (mean). failcnt: limit hits in",
        "the window. Each window starts with a sync; a no-pressure window covers expire +",
        f"writeback interval + {FLUSH_MARGIN_S} s, so it holds about one periodic flush per",
        "expire interval; flushes come in whole hot sets, so a window's rate is quantised (one",
        "flush more or less moves it by hot set / window).",
        "background (other writers on the device, subtracted): "
        + "; ".join(
            f"{b.what} {fmt(None if (r := b.bytes_per_s) is None else r * 60 / MIB)} MiB/min "
            f"over {b.seconds:.0f} s"
            for b in run.backgrounds
        )
        + f"; mean {fmt(None if bg is None else bg * 60 / MIB)} MiB/min",
        f"boot+fill wrote {fmt(None if (b := run.boot_write_bytes) is None else b / MIB, '.0f')}"
        " MiB; "
        f"OOM kills in the partition: {'?' if run.oom_kills is None else run.oom_kills}",
    ]
    if run.folios:
        large = statistics.fmean(
            f["in_large_folios"] / f["mapped_pages"] for f in run.folios if f["mapped_pages"]
        )
        lines.append(
            "memory file pages mapped in large folios at the end (under pressure): "
            f"{large * 100:.0f} %"
        )
    lines.append(run.restored)
    return lines


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = bench_parser("writeback", DESCRIPTION)
    add = parser.add_argument
    add("--guests", type=at_least(1), default=2, metavar="N", help="guests (default 2)")
    add(
        "--guest-mb",
        type=at_least(16),
        default=512,
        metavar="MIB",
        help="guest memory (default 512)",
    )
    add(
        "--mem-mb",
        type=at_least(1),
        default=256,
        metavar="MIB",
        help="memcheck fills (default 256)",
    )
    add("--hot-mb", type=at_least(1), default=32, metavar="MIB", help="hot set (default 32)")
    add(
        "--pass-delay-ms",
        type=at_least(0),
        default=100,
        metavar="MS",
        help="between passes (default 100)",
    )
    add(
        "--verify-every",
        type=at_least(1),
        default=50,
        metavar="N",
        help="verify every N passes (default 50)",
    )
    add(
        "--limit-mb",
        type=at_least(64),
        default=384,
        metavar="MIB",
        help="pressure cases' partition limit (default 384)",
    )
    add(
        "--duration",
        type=at_least(1),
        default=90,
        metavar="S",
        help="shortest window; pressure windows (default 90)",
    )
    add(
        "--background-s",
        type=at_least(1),
        default=30,
        metavar="S",
        help="each background window (default 30)",
    )
    add(
        "--expire-cs",
        type=at_least(1),
        default=30000,
        metavar="CS",
        help="dirty_expire_centisecs (default 30000)",
    )
    add(
        "--writeback-cs",
        type=at_least(1),
        default=3000,
        metavar="CS",
        help="dirty_writeback_centisecs (default 3000)",
    )
    add(
        "--background-mb",
        type=at_least(1),
        default=1024,
        metavar="MIB",
        help="dirty_background_bytes (default 1024)",
    )
    add(
        "--allocation",
        choices=["immediate", "ondemand"],
        default="immediate",
        help="memory file allocation (default immediate)",
    )
    add(
        "--fill-timeout",
        type=at_least(1),
        default=300,
        metavar="S",
        help="longest wait for the fill (default 300)",
    )
    add("--out-dir", type=Path, default=RESULTS, metavar="DIR", help=f"default {RESULTS}")
    args = parser.parse_args(argv)
    if args.hot_mb > args.mem_mb:
        parser.error("--hot-mb must be <= --mem-mb")
    if args.mem_mb + GUEST_OVERHEAD_MB > args.guest_mb:
        parser.error(f"--guest-mb must be >= --mem-mb + {GUEST_OVERHEAD_MB} (the guest kernel)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    run = Run()
    with sigterm_as_interrupt(), session("fmwb") as s:
        env = environment(s, args)
        header = header_lines(env, args)
        print("\n".join(header), flush=True)
        device = block_device_of(Path(env["memory_backing_dir"]))
        run_all(s, args, device, run)
    text = "\n".join([*header, "", result_table(run, args), "", *note_lines(run, args)]) + "\n"
    print()
    print(text, end="")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    recommendation = args.out_dir / "writeback.txt"
    # Keep a recommendation paragraph written by hand after the figures, if there is one.
    kept = ""
    if recommendation.exists():
        old = recommendation.read_text()
        if (at := old.find("\nRecommendation")) >= 0:
            kept = old[at:]
    recommendation.write_text(text + kept)
    (args.out_dir / "writeback.json").write_text(
        json.dumps(
            {
                "config": {k: v for k, v in vars(args).items() if k != "out_dir"},
                "environment": env,
                "sysctls_found": {dotted(k): v for k, v in Sysctls().found.items()},
                "backgrounds": [dataclasses.asdict(b) for b in run.backgrounds],
                "background_mib_per_min": None
                if (bg := run.background_rate()) is None
                else bg * 60 / MIB,
                "boot_write_bytes": run.boot_write_bytes,
                "oom_kills": run.oom_kills,
                "folios_at_end": run.folios,
                "windows": [figures(w, run, args) for w in run.windows],
                "restored": run.restored,
            },
            indent=2,
        )
        + "\n"
    )
    print(f"# wrote {args.out_dir}/writeback.txt, writeback.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
