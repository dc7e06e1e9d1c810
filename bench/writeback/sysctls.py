"""Writeback sysctls: read, set per Setting, restore as found (SIGTERM unwinds like Ctrl-C)."""

from __future__ import annotations

import argparse
import contextlib
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from bench._common import MIB

SYSCTL = Path("/proc/sys")
EXPIRE = "vm/dirty_expire_centisecs"
WRITEBACK = "vm/dirty_writeback_centisecs"
BG_BYTES = "vm/dirty_background_bytes"
BG_RATIO = "vm/dirty_background_ratio"
KNOBS = (EXPIRE, WRITEBACK, BG_BYTES, BG_RATIO)


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


def settings(args: argparse.Namespace) -> list[Setting]:
    expire = ((EXPIRE, args.expire_cs), (WRITEBACK, args.writeback_cs))
    return [
        Setting("defaults", ()),
        Setting("expire", expire),
        Setting("expire+bg", (*expire, (BG_BYTES, args.background_mb * MIB))),
    ]
