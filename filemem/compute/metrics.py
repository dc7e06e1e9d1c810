"""Prometheus text-format metrics of capacity, usage and memory files, written atomically."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_FILE_NAME = "metrics.prom"


@dataclass(frozen=True)
class GuestMetric:
    uuid: str
    name: str
    allocated_bytes: int
    nominal_bytes: int


@dataclass(frozen=True)
class MetricsSnapshot:
    """One sync's figures; None = unknown now (e.g. Placement down), so no sample is written."""

    placement_up: bool
    last_sync_timestamp: float | None = None
    memory_mb_total: int | None = None
    memory_mb_reserved: int | None = None
    memory_mb_used: int | None = None
    capacity_reduced: bool | None = None
    store_size_bytes: int | None = None
    store_free_bytes: int | None = None
    guests: Sequence[GuestMetric] = field(default_factory=tuple)


# name, help; all gauges.
_HOST_METRICS: tuple[tuple[str, str, str], ...] = (
    ("placement_up", "filemem_placement_up",
     "1 when the last resource sync reached Placement, 0 when it failed"),
    ("last_sync_timestamp", "filemem_last_successful_sync_timestamp_seconds",
     "Unix time of the last successful resource sync"),
    ("memory_mb_total", "filemem_memory_mb_total",
     "MEMORY_MB total in Placement ([libvirt] file_backed_memory, or host RAM)"),
    ("memory_mb_reserved", "filemem_memory_mb_reserved",
     "MEMORY_MB reserved in Placement, raised when the backing store holds less than total"),
    ("memory_mb_used", "filemem_memory_mb_used", "MEMORY_MB used by allocations in Placement"),
    ("capacity_reduced", "filemem_memory_capacity_reduced",
     "1 when reserved was raised because the backing store cannot hold the configured total"),
    ("store_size_bytes", "filemem_backing_store_size_bytes",
     "Size of the filesystem holding memory_backing_dir"),
    ("store_free_bytes", "filemem_backing_store_free_bytes",
     "Free bytes (for unprivileged users) on the filesystem holding memory_backing_dir"),
)
_GUEST_METRICS: tuple[tuple[str, str, str], ...] = (
    ("allocated_bytes", "filemem_guest_memory_file_allocated_bytes",
     "Bytes really allocated on the store by the guest's memory file"),
    ("nominal_bytes", "filemem_guest_memory_file_nominal_bytes",
     "Nominal size of the guest's memory file (its memory size)"),
)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _value(value: float | bool) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int) or value.is_integer():
        return str(int(value))
    return repr(value)


def _family(name: str, help_text: str, samples: Iterable[str]) -> list[str]:
    lines = list(samples)
    if not lines:
        return []
    return [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", *lines]


def render(snapshot: MetricsSnapshot) -> str:
    """The exposition text; families without a known value are left out."""
    lines: list[str] = []
    for attr, name, help_text in _HOST_METRICS:
        value = getattr(snapshot, attr)
        samples = [] if value is None else [f"{name} {_value(value)}"]
        lines += _family(name, help_text, samples)
    for attr, name, help_text in _GUEST_METRICS:
        lines += _family(name, help_text, (
            f'{name}{{uuid="{_escape(g.uuid)}",name="{_escape(g.name)}"}} '
            f"{_value(getattr(g, attr))}"
            for g in sorted(snapshot.guests, key=lambda g: g.uuid)
        ))
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """Readers (node_exporter, tests) see the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def parse(text: str) -> dict[str, float]:
    """Samples keyed by name with labels, e.g. 'filemem_memory_mb_total' (for tests and tools)."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        samples[key] = float(value)
    return samples
