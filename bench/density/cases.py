"""Density cases and their results: what each case asked for, what its guests showed."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from bench._common import MIB
from bench.density.probes import Folios
from devtools.memcheck import (
    MemcheckExit,
    MemcheckLine,
    MemcheckPass,
    parse_memcheck_console,
)
from filemem.backing.residency import qemu_pid

# The guest kernel needs this much beside memcheck's region (measured under TCG with the test
# image: 512 MiB does not fit in a 600 MiB guest, 296 fits in 384).
GUEST_OVERHEAD_MB = 128

Backing = Literal["file", "ram"]


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
