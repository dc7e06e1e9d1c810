"""Live migration policy, as nova's libvirt migration.py: downtime steps, the completion timeout,
the destination's domain XML. Pure: no libvirt, no I/O."""

from __future__ import annotations

import enum
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from filemem.common.resources import GIB, MIB
from filemem.virt.guest_config import file_memory_backing

__all__ = [
    "FILE_BACKING_CHILDREN",
    "MIN_DATA_GB",
    "MigrationOutcome",
    "MigrationProgress",
    "MigrationResult",
    "MigrationSettings",
    "ProgressCallback",
    "completion_timeout",
    "data_gb",
    "destination_uri",
    "downtime_steps",
    "memory_source_change",
    "migrate_uri",
    "should_trigger_timeout_action",
    "update_instance_paths_xml",
    "update_memory_backing_xml",
]

# nova counts at least 2 GiB of RAM, so small guests still get sane delays and timeouts.
MIN_DATA_GB = 2.0
# The <memoryBacking> children a file-backed spawn writes (guest_config.file_memory_backing).
FILE_BACKING_CHILDREN = ("source", "access", "allocation", "discard")


@dataclass(frozen=True)
class MigrationSettings:
    """[libvirt] live_migration_* (nova's names and units)."""

    scheme: str = "tcp"
    bandwidth_mib: int = 0
    downtime_ms: int = 500
    downtime_steps: int = 10
    downtime_delay_s: int = 75
    completion_timeout_s: int = 800
    timeout_action: Literal["abort", "force_complete"] = "abort"
    permit_post_copy: bool = False
    permit_auto_converge: bool = False


@dataclass(frozen=True)
class MigrationProgress:
    """One jobStats sample of a running migration."""

    elapsed_s: float
    memory_total_bytes: int
    memory_processed_bytes: int
    memory_remaining_bytes: int


ProgressCallback = Callable[[MigrationProgress], None]


class MigrationOutcome(enum.Enum):
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class MigrationResult:
    """How a migration ended; `reason` is libvirt's message for failed and cancelled."""

    outcome: MigrationOutcome
    reason: str = ""
    progress: MigrationProgress | None = None


def data_gb(memory_mb: int, disk_bytes: int = 0) -> float:
    """nova's _live_migration_data_gb: RAM (at least 2 GiB) plus disks block-migrated."""
    return max(memory_mb * MIB / GIB, MIN_DATA_GB) + disk_bytes / GIB


def downtime_steps(settings: MigrationSettings, gb: float) -> list[tuple[int, int]]:
    """(seconds after the start, max downtime ms) pairs: nova's downtime_steps, which raise the
    allowed downtime from downtime/steps to downtime in `steps` equal increments, one every
    downtime_delay seconds per GiB of data."""
    steps = settings.downtime_steps
    delay = int(settings.downtime_delay_s * gb)
    base = settings.downtime_ms / steps
    offset = (settings.downtime_ms - base) / steps
    return [(int(delay * i), int(base + offset * i)) for i in range(steps + 1)]


def completion_timeout(settings: MigrationSettings, gb: float) -> int:
    """Seconds the migration may take before the timeout action; 0 = none."""
    return int(settings.completion_timeout_s * gb)


def should_trigger_timeout_action(
    elapsed_s: float, timeout_s: int, post_copy_running: bool
) -> bool:
    """nova's rule: never without a timeout, never once post-copy runs (it cannot be undone:
    the guest already executes on the destination), else when the time is up."""
    if timeout_s <= 0 or post_copy_running:
        return False
    return elapsed_s > timeout_s


def destination_uri(scheme: str, address: str) -> str:
    """The destination libvirtd the source's libvirtd talks to (peer to peer)."""
    return f"qemu+{scheme}://{_uri_host(address)}/system"


def migrate_uri(address: str) -> str:
    """Where QEMU's migration stream goes: the destination's migration address."""
    return f"tcp://{_uri_host(address)}"


def _uri_host(address: str) -> str:
    if any(c in address for c in "/@?#") or not address.strip():
        raise ValueError(f"migration address {address!r} is not a host name or IP address")
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


def memory_source_change(xml: str, dest_file_backed_memory_mb: int) -> str | None:
    """Why the guest cannot go to a destination that backs memory differently, or None.

    libvirt's ABI stability check (qemuDomainABIStabilityCheck) refuses a migration whose
    destination XML changes <memoryBacking><source type>: "Target memoryBacking source 'none'
    doesn't match source memoryBacking source'file'" (measured with libvirt 9.0). Checked here
    first so the refusal names the hosts' configurations rather than libvirt's internals.
    """
    root = ET.fromstring(xml)  # noqa: S314 (libvirt's own XML)
    source = root.find("memoryBacking/source")
    here = "file" if source is not None and source.get("type") == "file" else "anonymous"
    there = "file" if dest_file_backed_memory_mb > 0 else "anonymous"
    if here == there:
        return None
    return (
        f"the guest's memory is {here}-backed here but would be {there}-backed on the "
        "destination ([libvirt] file_backed_memory differs), and libvirt cannot change a "
        "guest's memory backing source during a live migration: choose a destination that "
        "backs guest memory the same way"
    )


def update_memory_backing_xml(
    xml: str,
    dest_file_backed_memory_mb: int,
    *,
    allocation_mode: str = "immediate",
    discard: bool = True,
) -> str:
    """The domain XML for a destination with (>0) or without (0) file-backed memory.

    nova's _update_memory_backing_xml, on ElementTree: the four file-backing children are
    replaced (file-backed destination) or removed, other children (hugepages, locked...) kept;
    unlike nova, a <memoryBacking> left empty is removed rather than sent empty.
    """
    root = ET.fromstring(xml)  # noqa: S314 (libvirt's own XML; expat expands no external entities)
    backing = root.find("memoryBacking")
    if backing is not None:
        for child in [c for c in backing if c.tag in FILE_BACKING_CHILDREN]:
            backing.remove(child)
    if dest_file_backed_memory_mb > 0:
        if backing is None:
            backing = ET.Element("memoryBacking")
            root.insert(_after_memory(root), backing)
        wanted = file_memory_backing(allocation_mode, discard).to_element()
        backing.extend(c for c in wanted if c.tag in FILE_BACKING_CHILDREN)
    elif backing is not None and len(backing) == 0:
        root.remove(backing)
    return ET.tostring(root, encoding="unicode")


def _after_memory(root: ET.Element) -> int:
    """Where libvirt itself writes <memoryBacking>: after <memory> and <currentMemory>."""
    index = len(root)
    for i, child in enumerate(root):
        if child.tag in ("memory", "currentMemory"):
            index = i + 1
    return index


def update_instance_paths_xml(xml: str, source_dir: Path, dest_dir: Path) -> str:
    """Files of the guest under its instance directory (console log, disk overlay) moved to
    the destination's instance directory; a no-op when both hosts use the same path."""
    root = ET.fromstring(xml)  # noqa: S314 (libvirt's own XML)
    if source_dir != dest_dir:
        devices = root.find("devices")
        for element in devices.iter() if devices is not None else ():
            for key in ("path", "file"):
                value = element.get(key)
                if value is not None and Path(value).parent == source_dir:
                    element.set(key, str(dest_dir / Path(value).name))
    return ET.tostring(root, encoding="unicode")
