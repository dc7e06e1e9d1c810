"""The agent's bodies (agent -> API): registration, observed-state reports, working sets,
console output, instance-action and live migration events. Unknown fields are refused (see
the package docstring)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from filemem.common.constrained import Name, Storable, StrictModel, Uuid

# The agent may report any of nova's states filemem has (filemem.common.states).
VmState = Literal[
    "building", "active", "stopped", "paused", "suspended", "resized", "error", "deleted"
]
TaskState = Literal[
    "scheduling",
    "spawning",
    "powering-off",
    "powering-on",
    "rebooting",
    "rebooting_hard",
    "deleting",
    "pausing",
    "unpausing",
    "suspending",
    "resuming",
    "rebuilding",
    "resize_migrating",
    "resize_reverting",
]
PowerStateInt = Literal[0, 1, 3, 4, 6, 7]
Bytes = Annotated[int, Field(ge=0, le=2**63 - 1)]


class HostCapabilities(StrictModel):
    """What the host's libvirt/QEMU can do (not whether it is enabled there); capabilities a
    newer agent adds are ignored, not refused."""

    model_config = ConfigDict(extra="ignore", strict=True)

    file_backed_memory: bool
    live_migration: bool


class ServiceUpdate(StrictModel):
    binary: Name = "filemem-compute"
    provider_uuid: Uuid
    file_backed: bool = False
    file_backed_memory_mb: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0
    # Live migration contract: null/absent = an old agent that reports none of these.
    capabilities: HostCapabilities | None = None
    version: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    migration_address: Annotated[str, Field(min_length=1, max_length=255)] | None = None
    store_free_mb: Annotated[int, Field(ge=0, le=2**53)] | None = None


MigrationEventName = Literal["prepared", "started", "progress", "completed", "failed", "cancelled"]


class MigrationEvent(StrictModel):
    """POST /filemem/v1/migrations/{uuid}/events: one step of a live migration."""

    event: MigrationEventName
    reason: Annotated[Storable, Field(min_length=1, max_length=65536)] | None = None
    memory_total_bytes: Bytes | None = None
    memory_processed_bytes: Bytes | None = None
    memory_remaining_bytes: Bytes | None = None

    @model_validator(mode="after")
    def _reason_for_failures(self) -> MigrationEvent:
        if self.event in ("failed", "cancelled") and self.reason is None:
            raise PydanticCustomError(
                "filemem_invalid", "reason is required for a {event} event", {"event": self.event}
            )
        return self


class InstanceReport(StrictModel):
    """Any of these; a field sent as null (task_state, fault_*) is cleared."""

    vm_state: VmState | None = None
    task_state: TaskState | None = None
    power_state: PowerStateInt | None = None
    fault_message: Annotated[Storable, Field(max_length=65535)] | None = None
    fault_code: Annotated[int, Field(ge=100, le=599)] | None = None
    # false: the NMI of trigger_crash_dump was sent (or could not be: the event says which)
    crash_dump_requested: bool | None = None

    @model_validator(mode="after")
    def _no_null_states(self) -> InstanceReport:
        for name in ("vm_state", "power_state", "crash_dump_requested"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise PydanticCustomError(
                    "filemem_invalid", "{name} cannot be null", {"name": name}
                )
        return self

    def values(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.model_fields_set}


class GuestMemoryUsage(StrictModel):
    """One guest's working set as its agent measured it."""

    nominal_bytes: Bytes
    store_bytes: Bytes | None = None
    resident_bytes: Bytes | None = None
    major_faults: Bytes | None = None
    sampled_at: Annotated[str, Field(max_length=64)]


class MemoryUsageReport(StrictModel):
    """PUT /filemem/v1/hosts/{host}/memory-usage: every running guest of the host, by uuid."""

    guests: Annotated[dict[Uuid, GuestMemoryUsage], Field(max_length=10000)]


# nova/virt/libvirt/driver.py MAX_CONSOLE_BYTES; the agent decodes at most that many bytes, and
# each byte becomes at most one character.
MAX_CONSOLE_CHARS = 100 * 1024


def utc_naive(value: str) -> dt.datetime:
    """An ISO 8601 time as stored: naive UTC (a time without an offset is taken as UTC)."""
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    return parsed


def _iso_time(value: str) -> str:
    try:
        utc_naive(value)
    except (ValueError, OverflowError):
        raise ValueError(f"{value!r} is not an ISO 8601 time") from None
    return value


IsoTime = Annotated[str, Field(min_length=10, max_length=64), AfterValidator(_iso_time)]


class ConsoleOutput(StrictModel):
    """PUT /filemem/v1/instances/{uuid}/console: the console log's tail, answering the request
    the agent saw at `requested_at` (the agent view's console_requested_at, echoed)."""

    output: Annotated[Storable, Field(max_length=MAX_CONSOLE_CHARS)]
    requested_at: IsoTime


class InstanceEventReport(StrictModel):
    """POST /filemem/v1/instances/{uuid}/events: one finished step of the host's agent."""

    event: Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")]
    result: Literal["Success", "Error"]
    start_time: IsoTime
    finish_time: IsoTime
    traceback: Annotated[Storable, Field(max_length=65535)] | None = None
