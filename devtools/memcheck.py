"""The memcheck workload's console protocol: its lines as the host reads them, and its seed."""

from __future__ import annotations

import re
from dataclasses import dataclass

MEMCHECK_MAX_MEM_MB = 1 << 24  # memcheck.c's MAX_MEM_MB
MEMCHECK_PREFIX = "FILEMEM-MEMCHECK"
MEMCHECK_START_PREFIX = "FILEMEM-MEMCHECK-START"
MEMCHECK_FILLED_PREFIX = "FILEMEM-MEMCHECK-FILLED"
MEMCHECK_EXIT_PREFIX = "FILEMEM-MEMCHECK-EXIT"
MEMCHECK_ERROR_PREFIX = "FILEMEM-MEMCHECK-ERROR"


@dataclass(frozen=True)
class MemcheckFilled:
    """`FILEMEM-MEMCHECK-FILLED mb=N ms=T seed=S`: the pattern is written, after ms."""

    mb: int
    ms: int
    seed: int


@dataclass(frozen=True)
class MemcheckPass:
    """`FILEMEM-MEMCHECK pass=P ms=T verified=0|1 OK|CORRUPT bad_words=B`.

    verified: this pass checked all the memory, not only the hot set. bad_words counts the words
    that did not hold their pattern (0 when ok).
    """

    number: int
    ms: int
    verified: bool
    ok: bool
    bad_words: int


@dataclass(frozen=True)
class MemcheckExit:
    """`FILEMEM-MEMCHECK-EXIT status=N`: /init saw memcheck end (it never ends by itself)."""

    status: int


MemcheckLine = MemcheckFilled | MemcheckPass | MemcheckExit

_MEMCHECK_PASS_RE = re.compile(
    rf"{MEMCHECK_PREFIX} pass=(\d+) ms=(\d+) verified=([01]) (?:OK|CORRUPT bad_words=([1-9]\d*))"
)
_MEMCHECK_FILLED_RE = re.compile(rf"{MEMCHECK_FILLED_PREFIX} mb=(\d+) ms=(\d+) seed=(\d+)")
_MEMCHECK_EXIT_RE = re.compile(rf"{MEMCHECK_EXIT_PREFIX} status=(\d+)")


def parse_memcheck_line(line: str) -> MemcheckLine | None:
    """The pass, filled or exit line in one console line; None for any other line.

    Text before the FILEMEM-MEMCHECK marker is ignored (a console can glue output together);
    START and ERROR lines are informational (None). A line that has the marker but does not
    follow the format raises ValueError, so a change of format cannot go unnoticed.
    """
    start = line.find(MEMCHECK_PREFIX)
    if start < 0:
        return None
    text = line[start:].strip()
    if text.startswith((MEMCHECK_START_PREFIX, MEMCHECK_ERROR_PREFIX)):
        return None
    if match := _MEMCHECK_PASS_RE.fullmatch(text):
        number, ms, verified, bad = match.groups()
        return MemcheckPass(
            number=int(number),
            ms=int(ms),
            verified=verified == "1",
            ok=bad is None,
            bad_words=int(bad or 0),
        )
    if match := _MEMCHECK_FILLED_RE.fullmatch(text):
        return MemcheckFilled(*(int(group) for group in match.groups()))
    if match := _MEMCHECK_EXIT_RE.fullmatch(text):
        return MemcheckExit(int(match.group(1)))
    raise ValueError(f"malformed memcheck line: {line!r}")


def parse_memcheck_console(text: str) -> list[MemcheckLine]:
    """Every memcheck line of a console log, in order; a last line without its newline (still
    being written) is left out."""
    complete = text.split("\n")[:-1]
    return [parsed for line in complete if (parsed := parse_memcheck_line(line)) is not None]


def _fnv1a64(data: bytes) -> int:
    value = 0xCBF29CE484222325
    for byte in data:
        value = ((value ^ byte) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return value


def _mix64(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return z ^ (z >> 31)


def memcheck_seed_from_uuid(uuid: str) -> int:
    """The seed memcheck derives from an SMBIOS UUID (libvirt's domain UUID) when given none."""
    return _mix64(_fnv1a64(uuid.strip().lower().encode()))
