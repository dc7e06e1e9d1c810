"""Density: file- vs RAM-backed guests in one memory-limited partition at 1x, 2x, 4x its size."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import statistics
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench._common import MIB, REPO, Session, at_least, bench_parser, new_uuid, session, table
from filemem.backing.residency import (
    SECTOR_BYTES,
    block_device_of,
    file_residency,
    process_memory,
    qemu_pid,
    sectors_written,
)
from filemem.common.guests import Flavor, Image
from filemem.devtools.memcheck import (
    MEMCHECK_FILLED_PREFIX,
    MemcheckExit,
    MemcheckLine,
    MemcheckPass,
    parse_memcheck_console,
)
from filemem.exceptions import FilememError
from filemem.virt.libvirt import partition
from filemem.virt.libvirt.driver import LibvirtDriver

RESULTS = REPO / "bench" / "results"
DISTURBED = "; DISTURBED: something was mounted over memory_backing_dir meanwhile"
GOAL_RATIO = 1.25
GOAL_FACTOR = 2.0
SAMPLE_S = 2.0  # residency and partition counters during the measured window
FILL_POLL_S = 0.1
PAGE = os.sysconf("SC_PAGE_SIZE")
PAGE_KIB = PAGE // 1024
PFN_MASK = (1 << 55) - 1  # pagemap bits 0-54
KPF_COMPOUND_HEAD = 1 << 15  # include/uapi/linux/kernel-page-flags.h
KPF_COMPOUND_TAIL = 1 << 16
# The guest kernel needs this much beside memcheck's region (measured under TCG with the test
# image: 512 MiB does not fit in a 600 MiB guest, 296 fits in 384).
GUEST_OVERHEAD_MB = 128

Backing = Literal["file", "ram"]

DESCRIPTION = f"""\
Density: how many guests fit in R MiB of RAM, and the price. All guests of a case start in one
libvirt partition (a memory cgroup whose limit is R: a simulated host with R MiB of RAM, which
QEMU's own memory and the page cache of the memory files are charged to). Each guest runs the
test image's memcheck: it writes a pattern over --mem-mb MiB, then loops re-touching the first
--hot-mb MiB (one hot-set pass), checking all of it every --verify-every passes.

Cases, interleaved so drift hits both alike: for every factor F (--factors, default 1,2,4),
round(F * R / mem) guests, so that they write F x R MiB, once file-backed (filemem's default
config: file-backed memory, whole file allocated at start) and once RAM-backed
(file_backed_memory=0), each in its own fresh partition limited to R. The baseline for pass
times is the 1x set RAM-backed in a partition with no limit (run first and last): at 1x the
guests write R MiB, and their kernels and QEMU itself need more, so a RAM-backed 1x set cannot
fit in R (the RAM-backed 1x row shows it).

Per case: guests alive/booted at the end, kernel OOM kills in the partition (dmesg), CORRUPT
passes, boot time (spawn call to the FILLED line), hot-set pass time median and p95 and their
ratio to the baseline's, MiB written to the backing store's block device per guest per minute
during the measured window, and the share of guest memory resident in RAM (memory file pages
in the page cache for file-backed, QEMU RSS for RAM-backed). Writes results to
{RESULTS.relative_to(REPO)}/density.{{txt,json,png}} (--out-dir).

Goal: at {GOAL_FACTOR:g}x every file-backed guest alive and intact while the RAM-backed set
cannot be; hot-set passes at most {GOAL_RATIO}x slower than the baseline while the hot sets
(plus QEMU's own memory) fit in R.
"""


# -- cases and their results ------------------------------------------------------------------


@dataclass(frozen=True)
class CaseSpec:
    label: str
    backing: Backing
    factor: float  # the F asked for
    guests: int
    limited: bool  # False: the baseline, in a partition without a limit


@dataclass
class GuestRun:
    """One guest of a case, from spawn to teardown."""

    name: str
    uuid: str
    console: Path
    spawn_started: float  # perf_counter
    pid: int | None = None  # its QEMU; None if spawn failed or QEMU was gone at once
    memory_file: Path | None = None
    spawn_error: str | None = None
    filled_at: float | None = None  # perf_counter when the FILLED line showed
    passes_before_window: int = 0
    residency: list[float] = field(default_factory=list)  # share of guest memory, per sample
    survived: bool = False  # still running when the window ended
    lines: list[MemcheckLine] = field(default_factory=list)  # console, read at the window's end
    folios: Folios | None = None  # of its memory file, at the window's end
    # The memory file's directory, held open: other tests on this host mount stores over
    # memory_backing_dir, which would hide the file's path but not this descriptor.
    memory_dir_fd: int | None = None

    def memory_file_via_fd(self) -> Path | None:
        if self.memory_dir_fd is None or self.memory_file is None:
            return None
        return Path(f"/proc/self/fd/{self.memory_dir_fd}") / self.memory_file.name

    def read_lines(self) -> list[MemcheckLine]:
        try:
            return parse_memcheck_console(self.console.read_text(errors="replace"))
        except FileNotFoundError:
            return []

    def running(self) -> bool:
        return self.pid is not None and qemu_pid(self.name) == self.pid

    @property
    def boot_s(self) -> float | None:
        return None if self.filled_at is None else self.filled_at - self.spawn_started

    @property
    def passes(self) -> list[MemcheckPass]:
        return [line for line in self.lines if isinstance(line, MemcheckPass)]


@dataclass
class CaseResult:
    spec: CaseSpec
    partition: str
    runs: list[GuestRun] = field(default_factory=list)
    window_s: float = 0.0
    window_write_bytes: int | None = None
    boot_write_bytes: int | None = None
    oom_killed_pids: list[int] | None = None  # None: the kernel log could not be read
    failcnt: int = 0
    max_usage_bytes: int = 0
    anon_bytes: list[int] = field(default_factory=list)  # partition samples
    cache_bytes: list[int] = field(default_factory=list)
    other_guests: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    # Something else was mounted over memory_backing_dir during the case (another test's store):
    # new memory files may have gone there, and the capacity guard looked at it.
    store_changed: bool = False

    @property
    def booted(self) -> list[GuestRun]:
        return [r for r in self.runs if r.spawn_error is None]

    @property
    def survivors(self) -> list[GuestRun]:
        return [r for r in self.booted if r.survived]

    def running(self) -> list[GuestRun]:
        return [r for r in self.booted if r.running()]

    def hot_ms(self) -> list[int]:
        """Hot-set pass times in the measured window (verifying passes left out)."""
        return [
            p.ms for r in self.booted for p in r.passes[r.passes_before_window :] if not p.verified
        ]

    def corrupt(self) -> int:
        return sum(1 for r in self.booted for p in r.passes if not p.ok)

    def verified_ok(self) -> list[int]:
        """Per booted guest: passes that checked its whole region and found it intact."""
        return [sum(1 for p in r.passes if p.verified and p.ok) for r in self.booted]

    def memcheck_exits(self) -> int:
        return sum(1 for r in self.booted for line in r.lines if isinstance(line, MemcheckExit))

    def boot_times(self) -> list[float]:
        return [b for r in self.booted if (b := r.boot_s) is not None]

    def residency(self) -> float | None:
        shares = [statistics.fmean(r.residency) for r in self.booted if r.residency]
        return statistics.fmean(shares) if shares else None

    def folios(self) -> tuple[float, float] | None:
        """Share of mapped memory-file pages in large folios, and the mean folio KiB."""
        seen = [r.folios for r in self.booted if r.folios is not None and r.folios.mapped_pages]
        if not seen:
            return None
        return (
            statistics.fmean(f.large_share for f in seen),
            statistics.fmean(f.mean_kib for f in seen),
        )

    def mean_mib(self, samples: list[int]) -> float | None:
        return statistics.fmean(samples) / MIB if samples else None

    def write_mib_per_guest_min(self) -> float | None:
        if self.window_write_bytes is None or self.window_s < 1 or not self.booted:
            return None
        return self.window_write_bytes / MIB / len(self.booted) / (self.window_s / 60)

    def boot_write_mib_per_guest(self) -> float | None:
        if self.boot_write_bytes is None or not self.booted:
            return None
        return self.boot_write_bytes / MIB / len(self.booted)


# -- measuring --------------------------------------------------------------------------------


class FillWatch:
    """Notes when each guest's console first shows the FILLED line (a thread polls the logs), so
    a guest that fills while the next one is being spawned gets its own time."""

    def __init__(self) -> None:
        self._pending: dict[str, GuestRun] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fill-watch", daemon=True)

    def __enter__(self) -> FillWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def add(self, run: GuestRun) -> None:
        with self._lock:
            self._pending[run.uuid] = run

    def _run(self) -> None:
        while not self._stop.wait(FILL_POLL_S):
            with self._lock:
                pending = list(self._pending.values())
            for run in pending:
                with contextlib.suppress(FileNotFoundError):
                    if MEMCHECK_FILLED_PREFIX in run.console.read_text(errors="replace"):
                        run.filled_at = time.perf_counter()
                        with self._lock:
                            del self._pending[run.uuid]


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


def sample(
    case: CaseResult,
    part: partition.Partition,
    guest_bytes: int,
    backing_dir: Path,
    device: Device | None,
) -> None:
    case.store_changed |= block_device_of(backing_dir) != device
    for run in case.running():
        if (path := run.memory_file_via_fd()) is not None:
            resident = file_residency(path)
            if resident is not None and resident.nominal_bytes:
                run.residency.append(resident.resident_bytes / resident.nominal_bytes)
        elif run.pid is not None:
            # QEMU's own memory is in the RSS too: a RAM-backed guest can exceed 100 %.
            memory = process_memory(run.pid)
            if memory is not None:
                run.residency.append(memory.rss_bytes / guest_bytes)
    usage = partition.partition_memory_usage(part)
    case.anon_bytes.append(usage.rss_bytes)
    case.cache_bytes.append(usage.cache_bytes)


def spawn_all(
    s: Session,
    driver: LibvirtDriver,
    spec: CaseSpec,
    image: Image,
    flavor: Flavor,
    watch: FillWatch,
) -> list[GuestRun]:
    runs = []
    for i in range(spec.guests):
        uuid = new_uuid()
        run = GuestRun(
            name=s.guest_name(f"{spec.label}-{i}"),
            uuid=uuid,
            console=driver.console_log(uuid),
            spawn_started=time.perf_counter(),
        )
        runs.append(run)
        try:
            info = driver.spawn(run.name, uuid, flavor, image)
        except FilememError as exc:
            # A RAM-backed set may not even start under the limit: a result, not a crash.
            run.spawn_error = str(exc)
            print(f"#   {run.name}: spawn failed: {exc}", flush=True)
            continue
        run.pid = qemu_pid(run.name)
        if info.memory_file is not None:
            run.memory_file = info.memory_file.path
            with contextlib.suppress(OSError):
                run.memory_dir_fd = os.open(
                    run.memory_file.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
                )
        watch.add(run)
    return runs


def measure(
    s: Session,
    case: CaseResult,
    driver: LibvirtDriver,
    part: partition.Partition,
    args: argparse.Namespace,
    started: float,
    device: Device | None,
) -> None:
    """Boot the case's guests, wait until they filled (or died), then watch them for the
    measured window; everything read before teardown removes the console logs."""
    spec = case.spec
    backing_dir = driver.memory_backing_dir()
    case.store_changed |= block_device_of(backing_dir) != device
    cmdline = s.image.memcheck_cmdline(
        args.mem_mb, args.hot_mb, args.verify_every, pass_delay_ms=args.pass_delay_ms
    )
    image = Image(kind="kernel", kernel=s.image.kernel, initrd=s.image.initrd, cmdline=cmdline)
    flavor = Flavor(name=f"density-{args.guest_mb}", vcpus=1, memory_mb=args.guest_mb)
    written_at_start = written_bytes(device)
    with FillWatch() as watch:
        case.runs = spawn_all(s, driver, spec, image, flavor, watch)
        deadline = time.perf_counter() + args.fill_timeout
        while any(r.filled_at is None and r.running() for r in case.booted):
            if time.perf_counter() > deadline:
                print(f"#   not all filled after {args.fill_timeout} s; measuring anyway")
                break
            time.sleep(0.2)
    window_start = time.perf_counter()
    written_before = written_bytes(device)
    case.boot_write_bytes = delta(written_at_start, written_before)
    for run in case.booted:
        run.passes_before_window = len([x for x in run.read_lines() if isinstance(x, MemcheckPass)])
    end = window_start + args.duration
    while case.running() and time.perf_counter() < end:
        sample(case, part, args.guest_mb * MIB, backing_dir, device)
        time.sleep(max(0.0, min(SAMPLE_S, end - time.perf_counter())))
    written_after = written_bytes(device)
    case.window_s = time.perf_counter() - window_start
    case.window_write_bytes = delta(written_before, written_after)
    case.store_changed |= block_device_of(backing_dir) != device
    for run in case.booted:
        run.survived = run.running()
        run.lines = run.read_lines()
        if run.survived and run.pid is not None and run.memory_file is not None:
            run.folios = mapped_folios(run.pid, run.memory_file)
    usage = partition.partition_memory_usage(part)
    case.failcnt, case.max_usage_bytes = usage.failcnt, usage.max_usage_bytes
    case.oom_killed_pids = kernel_oom_kills(part)
    case.other_guests = sorted(s.watch.between(started, time.perf_counter()))


def run_case(
    s: Session, spec: CaseSpec, args: argparse.Namespace, device: Device | None
) -> CaseResult:
    started = time.perf_counter()
    name = s.guest_name(spec.label)
    limit_mb = args.limit_mb if spec.limited else 0
    part = partition.ensure_partition(name, limit_mb * MIB or None)
    file_backed_mb = spec.guests * args.guest_mb * 2 if spec.backing == "file" else 0
    settings = dataclasses.replace(
        s.settings(file_backed_mb, "immediate"),
        guest_partition=name,
        guest_memory_limit_mb=limit_mb,
    )
    driver = LibvirtDriver(settings)
    case = CaseResult(spec=spec, partition=part.libvirt_path)
    print(
        f"# {spec.label}: {spec.guests} x {args.guest_mb} MiB guests, {spec.backing}-backed, "
        f"partition {part.libvirt_path}, limit {f'{limit_mb} MiB' if limit_mb else 'none'}",
        flush=True,
    )
    try:
        measure(s, case, driver, part, args, started, device)
    finally:
        for run in case.runs:
            if run.memory_dir_fd is not None:
                os.close(run.memory_dir_fd)
            with contextlib.suppress(FilememError):
                driver.destroy(run.uuid)
        driver.connection.close()
        partition.remove_partition(part, wait=30.0)
    case.elapsed_s = time.perf_counter() - started
    kills = "?" if case.oom_killed_pids is None else len(case.oom_killed_pids)
    print(
        f"#   {len(case.survivors)}/{len(case.booted)} alive, {kills} OOM kills, "
        f"{len(case.hot_ms())} hot passes in {case.window_s:.0f} s; case took "
        f"{case.elapsed_s:.0f} s" + (DISTURBED if case.store_changed else ""),
        flush=True,
    )
    return case


def plan(args: argparse.Namespace) -> list[CaseSpec]:
    """Baseline, then file- and RAM-backed at every factor, then the baseline again."""

    def guests(factor: float) -> int:
        count: int = max(1, round(factor * args.limit_mb / args.mem_mb))
        return count

    base = guests(1.0)
    specs = [CaseSpec("base-a", "ram", 1.0, base, limited=False)]
    for factor in args.factors:
        for backing in ("file", "ram"):
            specs.append(
                CaseSpec(f"{backing}-{factor:g}x", backing, factor, guests(factor), limited=True)
            )
    specs.append(CaseSpec("base-b", "ram", 1.0, base, limited=False))
    return specs


# -- reporting --------------------------------------------------------------------------------


def p95(values: Sequence[float]) -> float:
    if len(values) == 1:
        return float(values[0])
    return statistics.quantiles(values, n=20, method="inclusive")[-1]


@dataclass(frozen=True)
class Baseline:
    median_ms: float | None
    p95_ms: float | None
    mean_ms: float | None

    @classmethod
    def of(cls, cases: Sequence[CaseResult]) -> Baseline:
        hot = [ms for c in cases if not c.spec.limited for ms in c.hot_ms()]
        if not hot:
            return cls(None, None, None)
        return cls(statistics.median(hot), p95(hot), statistics.fmean(hot))


def fmt(value: float | None, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def ratio(value: float | None, base: float | None) -> float | None:
    return None if value is None or not base else value / base


def hot_figures(case: CaseResult, base: Baseline) -> dict[str, float | None]:
    hot = case.hot_ms()
    med = float(statistics.median(hot)) if hot else None
    high = p95(hot) if hot else None
    # memcheck prints whole ms: at ~10 ms the median moves in ~10 % steps, the mean does not.
    mean = statistics.fmean(hot) if hot else None
    return {
        "median_ms": med,
        "p95_ms": high,
        "mean_ms": mean,
        "median_ratio": ratio(med, base.median_ms),
        "p95_ratio": ratio(high, base.p95_ms),
        "mean_ratio": ratio(mean, base.mean_ms),
    }


def fits(case: CaseResult, args: argparse.Namespace) -> bool | None:
    """Whether the hot sets plus QEMU's own (anonymous) memory fit in R; None if not measured.
    The guest kernels' own working sets and dirty pages waiting for writeback come on top."""
    anon = case.mean_mib(case.anon_bytes)
    return None if anon is None else anon + len(case.booted) * args.hot_mb <= args.limit_mb


def outcome_table(cases: Sequence[CaseResult], base: Baseline, args: argparse.Namespace) -> str:
    rows = []
    for c in cases:
        hot = hot_figures(c, base)
        boots = c.boot_times()
        kills = "?" if c.oom_killed_pids is None else str(len(c.oom_killed_pids))
        rows.append(
            [
                c.spec.label,
                f"{c.spec.guests * args.mem_mb / args.limit_mb:.2f}",
                f"{len(c.survivors)}/{len(c.booted)}"
                + ("" if len(c.booted) == c.spec.guests else f" of {c.spec.guests}"),
                kills,
                str(c.corrupt()),
                str(min(c.verified_ok(), default=0)),
                f"{fmt(statistics.median(boots) if boots else None, '.1f')}/"
                f"{fmt(max(boots) if boots else None, '.1f')}",
                fmt(hot["median_ms"]),
                fmt(hot["p95_ms"]),
                fmt(hot["mean_ms"], ".1f"),
                fmt(hot["median_ratio"], ".2f"),
                fmt(hot["p95_ratio"], ".2f"),
                fmt(hot["mean_ratio"], ".2f"),
                str(len(c.hot_ms())),
                fmt(c.write_mib_per_guest_min(), ".1f"),
                fmt(_percent(c.residency()), ".0f"),
                str(len(c.other_guests)),
            ]
        )
    return table(
        [
            "case",
            "written/R",
            "alive/booted",
            "OOM kills",
            "CORRUPT",
            "min verified",
            "boot s med/max",
            "hot ms med",
            "hot ms p95",
            "hot ms mean",
            "x base med",
            "x base p95",
            "x base mean",
            "hot passes",
            "MiB/guest/min",
            "resident %",
            "other guests",
        ],
        rows,
    )


def memory_table(cases: Sequence[CaseResult], args: argparse.Namespace) -> str:
    rows = []
    for c in cases:
        anon = c.mean_mib(c.anon_bytes)
        fit = fits(c, args)
        rows.append(
            [
                c.spec.label,
                f"{c.spec.guests}",
                f"{c.max_usage_bytes / MIB:.0f}",
                str(c.failcnt),
                fmt(anon),
                fmt(c.mean_mib(c.cache_bytes)),
                "-"
                if anon is None or c.spec.backing != "file"
                else f"{anon + len(c.booted) * args.hot_mb:.0f} ({'fits' if fit else 'over'})",
                fmt(c.boot_write_mib_per_guest()),
                f"{c.window_s:.0f}",
                str(c.memcheck_exits()),
                "-"
                if (folios := c.folios()) is None
                else f"{folios[0] * 100:.0f} % / {folios[1]:.0f} KiB",
            ]
        )
    return table(
        [
            "case",
            "guests",
            "max usage MiB",
            "failcnt",
            "QEMU anon MiB",
            "cache MiB",
            "anon+hot MiB",
            "boot write MiB/guest",
            "window s",
            "memcheck exits",
            "large folios / mean",
        ],
        rows,
    )


def _percent(share: float | None) -> float | None:
    return None if share is None else share * 100


def goals(cases: Sequence[CaseResult], base: Baseline, args: argparse.Namespace) -> list[str]:
    lines = []
    at = {(c.spec.backing, c.spec.factor): c for c in cases if c.spec.limited}
    file_case, ram_case = at.get(("file", GOAL_FACTOR)), at.get(("ram", GOAL_FACTOR))
    if file_case is None or ram_case is None:
        lines.append(f"goal 1 ({GOAL_FACTOR:g}x): not run (--factors lacks {GOAL_FACTOR:g})")
    else:
        intact = (
            len(file_case.survivors) == file_case.spec.guests
            and file_case.corrupt() == 0
            and min(file_case.verified_ok(), default=0) >= 1
        )
        ram_fails = len(ram_case.survivors) < ram_case.spec.guests
        lines.append(
            f"goal 1: at {GOAL_FACTOR:g}x every file-backed guest alive and intact "
            f"({len(file_case.survivors)}/{file_case.spec.guests} alive, {file_case.corrupt()} "
            f"CORRUPT, each verified >= {min(file_case.verified_ok(), default=0)} times) while "
            f"the RAM-backed set cannot be ({len(ram_case.survivors)}/{ram_case.spec.guests} "
            f"alive): {'MET' if intact and ram_fails else 'NOT MET'}"
        )
    verdicts, met = [], []
    for c in cases:
        if not c.spec.limited or c.spec.backing != "file":
            continue
        hot = hot_figures(c, base)
        med = hot["median_ratio"]
        if not fits(c, args):
            verdicts.append(
                f"  {c.spec.label}: hot sets + QEMU's memory do not fit in R: not "
                f"judged (median x{fmt(med, '.2f')})"
            )
            continue
        met.append(med is not None and med <= GOAL_RATIO)
        verdicts.append(
            f"  {c.spec.label}: median x{fmt(med, '.2f')} (p95 "
            f"x{fmt(hot['p95_ratio'], '.2f')}, mean x{fmt(hot['mean_ratio'], '.2f')})"
            f": {'MET' if met[-1] else 'NOT MET'}"
        )
    overall = "MET" if met and all(met) else "NOT MET" if met else "NOT JUDGED (nothing fit)"
    lines.append(
        f"goal 2: file-backed hot-set pass median at most {GOAL_RATIO}x the baseline's "
        f"while hot sets + QEMU's own memory fit in R: {overall}"
    )
    lines.extend(verdicts)
    return lines


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


def header_lines(
    env: dict[str, Any], args: argparse.Namespace, specs: Sequence[CaseSpec]
) -> list[str]:
    shared = env["device_shared_with"]
    return [
        f"# density: R = {args.limit_mb} MiB partition limit; guests of {args.guest_mb} MiB, "
        f"memcheck writes {args.mem_mb} MiB, hot set {args.hot_mb} MiB, verify every "
        f"{args.verify_every} passes, {args.pass_delay_ms} ms between passes; "
        f"{args.duration} s measured per case after all guests filled",
        f"# cases: {', '.join(f'{c.label} ({c.guests})' for c in specs)}",
        f"# kernel {env['kernel']}, {env['cpus']} CPUs, libvirt {env['libvirt']}, QEMU "
        f"{env['qemu']}, {env['virt_type']}; memory files in {env['memory_backing_dir']} on "
        f"block device {env['backing_device']}"
        + (
            f", SHARED with {', '.join(shared)}: other writers (logs, other work on this host) "
            "count in the write rates; the RAM-backed rows show that background"
            if shared
            else " (not shared with / or the logs)"
        ),
    ]


def legend_lines(args: argparse.Namespace) -> list[str]:
    return [
        "written/R: MiB memcheck writes over all guests / R. alive/booted: guests running at the",
        "end / guests whose spawn succeeded. OOM kills: kernel log oom-kill lines for the case's",
        "partition. min verified: fewest intact verifying passes of any guest. boot: spawn call",
        "to the FILLED line. hot ms: in-guest time of one hot-set pass in the measured window",
        "(memcheck prints whole ms, so near 10 ms the median moves in ~10 % steps);",
        "x base: over the baseline (base-a + base-b: the 1x set RAM-backed, no limit).",
        "MiB/guest/min: block device writes in the window. resident %: memory file pages in the",
        "page cache / file size (file-backed), QEMU RSS / guest memory (RAM-backed, QEMU's own",
        "memory included). anon+hot: partition anonymous memory (QEMU) + hot sets, vs R =",
        f"{args.limit_mb} MiB. large folios / mean: share of the memory file's mapped pages",
        "held in folios larger than a page, and the mean folio size, at the window's end;",
        "reclaim, writeback and read-in move whole folios.",
    ]


def case_json(c: CaseResult, base: Baseline, args: argparse.Namespace) -> dict[str, Any]:
    return {
        **dataclasses.asdict(c.spec),
        "partition": c.partition,
        "written_over_limit": c.spec.guests * args.mem_mb / args.limit_mb,
        "booted": len(c.booted),
        "alive": len(c.survivors),
        "oom_killed_pids": c.oom_killed_pids,
        "corrupt_passes": c.corrupt(),
        "verified_ok_per_guest": c.verified_ok(),
        "memcheck_exits": c.memcheck_exits(),
        "boot_s": c.boot_times(),
        "hot": hot_figures(c, base),
        "hot_passes": len(c.hot_ms()),
        "window_s": c.window_s,
        "window_write_bytes": c.window_write_bytes,
        "write_mib_per_guest_min": c.write_mib_per_guest_min(),
        "boot_write_bytes": c.boot_write_bytes,
        "residency_share": c.residency(),
        "partition_failcnt": c.failcnt,
        "partition_max_usage_bytes": c.max_usage_bytes,
        "partition_anon_mib_mean": c.mean_mib(c.anon_bytes),
        "partition_cache_mib_mean": c.mean_mib(c.cache_bytes),
        "hot_sets_fit": fits(c, args),
        "other_guests": c.other_guests,
        "elapsed_s": c.elapsed_s,
        "store_changed": c.store_changed,
        "guests": [
            {
                "name": r.name,
                "spawn_error": r.spawn_error,
                "boot_s": r.boot_s,
                "survived": r.survived,
                "passes": len(r.passes),
                "window_hot_ms": [
                    p.ms for p in r.passes[r.passes_before_window :] if not p.verified
                ],
                "verified_ok": sum(1 for p in r.passes if p.verified and p.ok),
                "corrupt": sum(1 for p in r.passes if not p.ok),
                "residency_samples": r.residency,
                "folios": None if r.folios is None else dataclasses.asdict(r.folios),
            }
            for r in c.runs
        ],
    }


def plot(cases: Sequence[CaseResult], base: Baseline, args: argparse.Namespace, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display: write the file only
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    limited = [c for c in cases if c.spec.limited]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8))
    for backing, colour in (("file", "tab:blue"), ("ram", "tab:red")):
        mine = sorted(
            (c for c in limited if c.spec.backing == backing), key=lambda c: c.spec.factor
        )
        xs = [c.spec.guests * args.mem_mb / args.limit_mb for c in mine]
        figures = [hot_figures(c, base) for c in mine]
        for key, style, what in (("median_ratio", "o-", "median"), ("p95_ratio", "s--", "p95")):
            pts = [(x, f[key]) for x, f in zip(xs, figures, strict=True) if f[key] is not None]
            if pts:
                left.plot(
                    *zip(*pts, strict=True), style, color=colour, label=f"{backing}-backed {what}"
                )
        shares = [
            (x, s * 100) for x, c in zip(xs, mine, strict=True) if (s := c.residency()) is not None
        ]
        if shares:
            right.plot(*zip(*shares, strict=True), "o-", color=colour, label=f"{backing}-backed")
        for x, c in zip(xs, mine, strict=True):
            if not c.survivors:
                for axis in (left, right):
                    axis.axvline(x, color=colour, alpha=0.25, linestyle=":")
                    axis.annotate(
                        f"{backing}-backed: none alive",
                        (x, 0.02),
                        xycoords=("data", "axes fraction"),
                        rotation=90,
                        color=colour,
                        fontsize=8,
                        ha="right",
                    )
    left.axhline(GOAL_RATIO, color="grey", linestyle="--", linewidth=1, label=f"goal {GOAL_RATIO}x")
    left.axhline(1.0, color="black", linewidth=0.8)
    left.set_yscale("log")
    left.set_ylim(bottom=0.5)
    left.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda y, _: f"{y:g}"))
    for axis in (left, right):
        axis.set_xticks(sorted({c.spec.guests * args.mem_mb / args.limit_mb for c in limited}))
    left.set_xlabel("memory written by the guests / R")
    left.set_ylabel("hot-set pass time / baseline (RAM-backed 1x, no limit)")
    left.set_title("price: hot-set pass time")
    right.set_xlabel("memory written by the guests / R")
    right.set_ylabel("% of guest memory resident in RAM")
    right.set_title("residency")
    right.set_ylim(bottom=0)
    for axis in (left, right):
        axis.grid(True, alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle(
        f"{args.guest_mb} MiB guests writing {args.mem_mb} MiB, hot set "
        f"{args.hot_mb} MiB, R = {args.limit_mb} MiB (TCG, 2 shared cores)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- command line -----------------------------------------------------------------------------


def factors(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not values or any(not math.isfinite(v) or v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"factors must be > 0: {text!r}")
    return values


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = bench_parser("density", DESCRIPTION)
    parser.add_argument(
        "--limit-mb",
        type=at_least(64),
        default=512,
        metavar="MIB",
        help="R, the partition's memory limit (default 512)",
    )
    parser.add_argument(
        "--mem-mb",
        type=at_least(1),
        default=512,
        metavar="MIB",
        help="MiB each guest's memcheck writes (default 512)",
    )
    parser.add_argument(
        "--guest-mb",
        type=at_least(16),
        default=None,
        metavar="MIB",
        help=f"guest memory (default --mem-mb + {GUEST_OVERHEAD_MB}: room for the guest kernel)",
    )
    parser.add_argument(
        "--hot-mb",
        type=at_least(1),
        default=16,
        metavar="MIB",
        help="hot set each pass re-touches (default 16)",
    )
    parser.add_argument(
        "--factors",
        type=factors,
        default=[1.0, 2.0, 4.0],
        metavar="F,F,...",
        help="memory written / R per case (default 1,2,4)",
    )
    parser.add_argument(
        "--duration",
        type=at_least(1),
        default=60,
        metavar="S",
        help="seconds measured per case once all guests filled (default 60)",
    )
    parser.add_argument(
        "--verify-every",
        type=at_least(1),
        default=50,
        metavar="N",
        help="a pass checking all memory every N passes (default 50)",
    )
    parser.add_argument(
        "--pass-delay-ms",
        type=at_least(0),
        default=100,
        metavar="MS",
        help="guest sleep between passes, leaving CPU to the others (default 100)",
    )
    parser.add_argument(
        "--fill-timeout",
        type=at_least(1),
        default=300,
        metavar="S",
        help="longest wait for a case's guests to fill (default 300)",
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=RESULTS,
        metavar="DIR",
        help=f"where density.txt/json/png go (default {RESULTS})",
    )
    args = parser.parse_args(argv)
    if args.guest_mb is None:
        args.guest_mb = args.mem_mb + GUEST_OVERHEAD_MB
    if args.hot_mb > args.mem_mb:
        parser.error("--hot-mb must be <= --mem-mb")
    if args.mem_mb >= args.guest_mb:
        parser.error("--mem-mb must be below --guest-mb (the guest kernel needs memory too)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    specs = plan(args)
    with session("fmdn") as s:
        env = environment(s, args)
        header = header_lines(env, args, specs)
        print("\n".join(header), flush=True)
        device = block_device_of(Path(env["memory_backing_dir"]))
        cases = [run_case(s, spec, args, device) for spec in specs]
    base = Baseline.of(cases)
    ordered = sorted(cases, key=lambda c: (c.spec.limited, c.spec.factor, c.spec.backing))
    report = [
        *header,
        "",
        outcome_table(ordered, base, args),
        "",
        memory_table(ordered, args),
        "",
        *legend_lines(args),
        "",
        *(
            f"{c.spec.label}{DISTURBED} (another test's store?): its figures are suspect"
            for c in ordered
            if c.store_changed
        ),
        f"baseline hot-set pass: median {fmt(base.median_ms)} ms, p95 {fmt(base.p95_ms)} ms, "
        f"mean {fmt(base.mean_ms, '.1f')} ms",
        *goals(ordered, base, args),
    ]
    text = "\n".join(report) + "\n"
    print()
    print(text, end="")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "density.txt").write_text(text)
    (args.out_dir / "density.json").write_text(
        json.dumps(
            {
                "config": {k: v for k, v in vars(args).items() if k != "out_dir"},
                "environment": env,
                "baseline": dataclasses.asdict(base),
                "goals": goals(ordered, base, args),
                "cases": [case_json(c, base, args) for c in cases],
            },
            indent=2,
        )
        + "\n"
    )
    plot(ordered, base, args, args.out_dir / "density.png")
    print(f"# wrote {args.out_dir}/density.txt, density.json, density.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
