"""Working sets: how much of each guest's memory is in RAM, and whether the host is thrashing.

A file-backed guest's memory is its memory file: resident = its pages in the page cache
(mincore), the rest lives only on the store. A RAM-backed guest's memory is QEMU's anonymous
memory. Page-ins are the major faults of the guest's QEMU process. Host-wide, refaults
(pages read back soon after they were evicted) and PSI memory pressure tell a thrashing host
before its guests' users do.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from filemem.backing import residency
from filemem.backing.residency import Counters, HostPressure, Rates
from filemem.common.guests import GuestInfo
from filemem.common.resources import MIB

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class GuestWorkingSet:
    """One guest's memory: nominal size, bytes on the store, bytes in RAM, page-ins so far."""

    uuid: str
    name: str
    file_backed: bool
    nominal_bytes: int
    store_bytes: int | None  # allocated in the store; None for a RAM-backed guest
    resident_bytes: int | None  # None when it could not be read (guest stopping, no rights)
    major_faults: int | None

    @property
    def resident_share(self) -> float | None:
        if self.resident_bytes is None or not self.nominal_bytes:
            return None
        return min(1.0, self.resident_bytes / self.nominal_bytes)

    def as_dict(self) -> dict[str, object]:
        return {
            "uuid": self.uuid,
            "name": self.name,
            "file_backed": self.file_backed,
            "nominal_bytes": self.nominal_bytes,
            "store_bytes": self.store_bytes,
            "resident_bytes": self.resident_bytes,
            "major_faults": self.major_faults,
        }


@dataclass(frozen=True)
class HostWorkingSet:
    """The host's guests together, and the pressure they put on RAM and on the store."""

    guests: Sequence[GuestWorkingSet]
    pressure: HostPressure
    counters: Counters
    rates: Rates | None  # None until two samples exist

    @property
    def resident_bytes(self) -> int:
        return sum(g.resident_bytes or 0 for g in self.guests)

    @property
    def store_only_bytes(self) -> int:
        """Guest memory that lives only on the store right now (allocated, not resident)."""
        return sum(
            max(0, (g.store_bytes or 0) - (g.resident_bytes or 0))
            for g in self.guests
            if g.file_backed
        )


def guest_working_set(
    guest: GuestInfo,
    run_dir: Path = residency.LIBVIRT_QEMU_RUN_DIR,
) -> GuestWorkingSet:
    """Read one running guest's working set; unreadable parts are None, never guessed."""
    pid = residency.qemu_pid(guest.name, run_dir) if guest.domain_id else None
    process = residency.process_memory(pid) if pid is not None else None
    store_bytes: int | None = None
    resident: int | None = None
    if guest.file_backed and guest.memory_file is not None:
        try:
            found = residency.file_residency(guest.memory_file.path)
        except OSError as exc:
            LOG.debug("residency of %s not readable: %s", guest.memory_file.path, exc)
            found = None
        if found is not None:
            store_bytes, resident = found.allocated_bytes, found.resident_bytes
    elif not guest.file_backed and process is not None:
        resident = process.rss_anon_bytes
    return GuestWorkingSet(
        uuid=guest.uuid,
        name=guest.name,
        file_backed=guest.file_backed,
        nominal_bytes=guest.memory_mb * MIB,
        store_bytes=store_bytes,
        resident_bytes=resident,
        major_faults=process.major_faults if process is not None else None,
    )


class WorkingSetSampler:
    """Samples the host; keeps the previous counters so the second sample on gives rates."""

    def __init__(
        self, store_dir: Path | None, run_dir: Path = residency.LIBVIRT_QEMU_RUN_DIR
    ) -> None:
        self.store_dir = store_dir
        self.run_dir = run_dir
        self._previous: tuple[float, Counters] | None = None

    def sample(self, guests: Sequence[GuestInfo], now: float) -> HostWorkingSet:
        pressure = residency.host_memory_pressure()
        write_bytes = (
            residency.device_write_bytes(self.store_dir)
            if self.store_dir is not None and self.store_dir.exists()
            else None
        )
        counters = Counters(pressure.major_faults, pressure.refaults, write_bytes)
        rates = None
        if self._previous is not None and now > self._previous[0]:
            rates = residency.rates(self._previous[1], counters, now - self._previous[0])
        self._previous = (now, counters)
        running = [g for g in guests if g.domain_id is not None]
        return HostWorkingSet(
            guests=[guest_working_set(g, self.run_dir) for g in running],
            pressure=pressure,
            counters=counters,
            rates=rates,
        )
