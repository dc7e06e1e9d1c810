"""Prometheus metrics of capacity, usage, memory files and working sets (prometheus-client).

The resource loop publishes one MetricsSnapshot per cycle; a collector turns the latest one into
metric families, served over HTTP (`[DEFAULT] metrics_listen`) and written as a textfile for
node_exporter. Values unknown right now (Placement down, no store) are left out, not zeroed.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

DEFAULT_FILE_NAME = "metrics.prom"


@dataclass(frozen=True)
class GuestMetric:
    uuid: str
    name: str
    allocated_bytes: int | None
    nominal_bytes: int
    resident_bytes: int | None = None
    major_faults: int | None = None


@dataclass(frozen=True)
class MetricsSnapshot:
    """One cycle's figures; None = unknown now (e.g. Placement down), so no sample is written."""

    placement_up: bool
    last_sync_timestamp: float | None = None
    memory_mb_total: int | None = None
    memory_mb_reserved: int | None = None
    memory_mb_used: int | None = None
    capacity_reduced: bool | None = None
    store_size_bytes: int | None = None
    store_free_bytes: int | None = None
    store_written_bytes: int | None = None
    refaults: int | None = None
    pressure_some_avg10: float | None = None
    pressure_full_avg10: float | None = None
    guests: Sequence[GuestMetric] = field(default_factory=tuple)


# snapshot attribute, metric name, help; all gauges (counters are exported as the kernel's totals
# under *_total names, so rate() works on them).
_HOST_METRICS: tuple[tuple[str, str, str], ...] = (
    (
        "placement_up",
        "filemem_placement_up",
        "1 when the last resource sync reached Placement, 0 when it failed",
    ),
    (
        "last_sync_timestamp",
        "filemem_last_successful_sync_timestamp_seconds",
        "Unix time of the last successful resource sync",
    ),
    (
        "memory_mb_total",
        "filemem_memory_mb_total",
        "MEMORY_MB total in Placement ([libvirt] file_backed_memory, or host RAM)",
    ),
    (
        "memory_mb_reserved",
        "filemem_memory_mb_reserved",
        "MEMORY_MB reserved in Placement, raised when the backing store holds less than total",
    ),
    ("memory_mb_used", "filemem_memory_mb_used", "MEMORY_MB used by allocations in Placement"),
    (
        "capacity_reduced",
        "filemem_memory_capacity_reduced",
        "1 when reserved was raised because the backing store cannot hold the configured total",
    ),
    (
        "store_size_bytes",
        "filemem_backing_store_size_bytes",
        "Size of the filesystem holding memory_backing_dir",
    ),
    (
        "store_free_bytes",
        "filemem_backing_store_free_bytes",
        "Free bytes (for unprivileged users) on the filesystem holding memory_backing_dir",
    ),
    (
        "store_written_bytes",
        "filemem_backing_store_written_bytes_total",
        "Bytes written so far to the block device of the backing store (wear: use rate())",
    ),
    (
        "refaults",
        "filemem_host_workingset_refaults_total",
        "Pages read back soon after eviction (/proc/vmstat workingset_refault*): thrashing",
    ),
    (
        "pressure_some_avg10",
        "filemem_host_memory_pressure_some_avg10",
        "Share of the last 10 s some task waited for memory (PSI, percent)",
    ),
    (
        "pressure_full_avg10",
        "filemem_host_memory_pressure_full_avg10",
        "Share of the last 10 s all tasks waited for memory (PSI, percent)",
    ),
)
_GUEST_METRICS: tuple[tuple[str, str, str], ...] = (
    (
        "allocated_bytes",
        "filemem_guest_memory_file_allocated_bytes",
        "Bytes really allocated on the store by the guest's memory file",
    ),
    (
        "nominal_bytes",
        "filemem_guest_memory_file_nominal_bytes",
        "Nominal size of the guest's memory file (its memory size)",
    ),
    (
        "resident_bytes",
        "filemem_guest_memory_resident_bytes",
        "Bytes of the guest's memory file resident in the host's page cache (RAM)",
    ),
    (
        "major_faults",
        "filemem_guest_major_faults_total",
        "Major page faults of the guest's QEMU process: pages read in from the store",
    ),
)


class SnapshotCollector(Collector):
    """Serves the latest snapshot; `publish` swaps it atomically for scrapes in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: MetricsSnapshot | None = None

    def publish(self, snapshot: MetricsSnapshot) -> None:
        with self._lock:
            self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            snapshot = self._snapshot
        if snapshot is None:
            return
        for attr, name, help_text in _HOST_METRICS:
            value = getattr(snapshot, attr)
            if value is not None:
                yield GaugeMetricFamily(name, help_text, value=float(value))
        for attr, name, help_text in _GUEST_METRICS:
            family = GaugeMetricFamily(name, help_text, labels=["uuid", "name"])
            for guest in sorted(snapshot.guests, key=lambda g: g.uuid):
                value = getattr(guest, attr)
                if value is not None:
                    family.add_metric([guest.uuid, guest.name], float(value))
            if family.samples:
                yield family


class Metrics:
    """The host's metrics: one registry, a textfile and optionally an HTTP endpoint."""

    def __init__(self, textfile: Path) -> None:
        self.textfile = Path(textfile)
        self.registry = CollectorRegistry()
        self.collector = SnapshotCollector()
        self.registry.register(self.collector)

    def publish(self, snapshot: MetricsSnapshot) -> None:
        """New figures for scrapes, and the textfile rewritten (atomically, by the library)."""
        self.collector.publish(snapshot)
        self.textfile.parent.mkdir(parents=True, exist_ok=True)
        write_to_textfile(str(self.textfile), self.registry)
        self.textfile.chmod(0o644)

    def serve(self, address: str, port: int) -> None:
        """GET /metrics on address:port from a daemon thread (prometheus-client's server)."""
        start_http_server(port, addr=address, registry=self.registry)


def parse(text: str) -> dict[str, float]:
    """Samples keyed as written, e.g. 'filemem_memory_mb_total' or 'x{uuid="..",name=".."}'
    (labels sorted by name, as prometheus-client writes them), for tests and tools."""
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples
