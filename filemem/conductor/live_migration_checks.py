"""Live migration's pure decisions: whether a guest may move now, whether a host may take it,
and what the source agent is told about its destination (no I/O; unit-tested alone)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from filemem.common import states

# nova's check_instance_state for live_migrate: a running or paused guest, no task running.
MIGRATABLE = (states.ACTIVE, states.PAUSED)
NO_VALID_HOST = "No valid host was found."


@dataclass(frozen=True)
class HostFacts:
    """A compute service as the prechecks see it (from the services table)."""

    host: str
    up: bool
    disabled: bool
    file_backed_memory_mb: int = 0
    capabilities: Mapping[str, Any] | None = None
    store_free_mb: int | None = None
    migration_address: str | None = None
    provider_uuid: str | None = None

    @property
    def file_backed(self) -> bool:
        return self.file_backed_memory_mb > 0

    def capable(self, name: str) -> bool:
        """A capability the agent reported true; an old agent (no capabilities) has none."""
        return bool((self.capabilities or {}).get(name, False))


@dataclass(frozen=True)
class GuestFacts:
    """The instance to move: its state, size and whether its memory wants huge pages."""

    uuid: str
    vm_state: str
    task_state: str | None
    memory_mb: int
    wants_huge_pages: bool = False
    locked: bool = False
    migration_in_progress: bool = False


def instance_refusal(guest: GuestFacts, caller_is_admin: bool) -> str | None:
    """Why the instance cannot start a live migration now (nova answers 409), or None."""
    if guest.locked and not caller_is_admin:
        return f"Instance {guest.uuid} is locked"
    if guest.vm_state not in MIGRATABLE:
        return (
            f"Cannot 'os-migrateLive' instance {guest.uuid} while it is in vm_state "
            f"{guest.vm_state}"
        )
    if guest.task_state is not None:
        return (
            f"Cannot 'os-migrateLive' instance {guest.uuid} while it is in task_state "
            f"{guest.task_state}"
        )
    if guest.migration_in_progress:
        return f"Instance {guest.uuid} has another migration in progress"
    return None


def destination_refusal(guest: GuestFacts, source: HostFacts, dest: HostFacts) -> str | None:
    """Why `dest` cannot take the guest from `source` (nova's MigrationPreCheckError: 400),
    or None. Capacity is the destination's own report of its store, not only Placement's."""
    if dest.host == source.host:
        return f"Unable to migrate instance ({guest.uuid}) to current host ({source.host})."
    if not dest.up:
        return f"Compute service of {dest.host} is unavailable at this time."
    if dest.disabled:
        return f"Compute service of {dest.host} is disabled: it takes no new guests."
    if dest.file_backed:
        if guest.wants_huge_pages:
            return (
                f"cannot live-migrate {guest.uuid} to file-backed host {dest.host}: its flavor "
                "or image asks for a memory page size (huge pages), which file-backed memory "
                "cannot give"
            )
        if not source.capable("file_backed_memory"):
            return (
                f"cannot live-migrate {guest.uuid} from {source.host} (no file-backed memory "
                f"support) to file-backed host {dest.host}"
            )
    if dest.file_backed != source.file_backed:
        # Measured with libvirt 9: "Target memoryBacking source 'none' doesn't match source
        # memoryBacking source 'file'" -- QEMU's memory backend is part of the migrated machine.
        return (
            f"cannot live-migrate {guest.uuid} from {_backing(source)} host {source.host} to "
            f"{_backing(dest)} host {dest.host}: libvirt cannot change a running guest's memory "
            "backing; move it to a host that backs memory the same way"
        )
    if dest.store_free_mb is None:
        return (
            f"cannot live-migrate {guest.uuid} to {dest.host}: its agent reports no free room "
            "on its backing store (store_free_mb); it may be older than live migration"
        )
    if dest.store_free_mb < guest.memory_mb:
        return (
            f"cannot live-migrate {guest.uuid} to {dest.host}: its backing store has "
            f"{dest.store_free_mb} MiB free, the guest needs {guest.memory_mb} MiB"
        )
    return None


def _backing(host: HostFacts) -> str:
    return "file-backed" if host.file_backed else "RAM-backed"


def requested_force(version_at_least_230: bool, host: str | None, force: bool | None) -> bool:
    """Whether the scheduler's filters are skipped: below 2.30 a given host is forced (nova's
    old behaviour); from 2.30 only `force: true` with a host forces."""
    if host is None:
        return False
    return True if not version_at_least_230 else bool(force)


def block_migration_wanted(value: bool | str) -> bool:
    """2.25's "auto": block migration unless both hosts share storage. filemem's hosts keep
    their instance directories locally, so "auto" means a block migration."""
    if isinstance(value, bool):
        return value
    return True
