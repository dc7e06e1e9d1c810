"""Agent API bodies (/filemem/v1): service registration and observed-state reports."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from filemem.api.schemas.common import Name, Storable, StrictModel, Uuid

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


class ServiceUpdate(StrictModel):
    binary: Name = "filemem-compute"
    provider_uuid: Uuid
    file_backed: bool = False
    file_backed_memory_mb: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0


class InstanceReport(StrictModel):
    """Any of these; a field sent as null (task_state, fault_*) is cleared."""

    vm_state: VmState | None = None
    task_state: TaskState | None = None
    power_state: PowerStateInt | None = None
    fault_message: Annotated[Storable, Field(max_length=65535)] | None = None
    fault_code: Annotated[int, Field(ge=100, le=599)] | None = None

    @model_validator(mode="after")
    def _no_null_states(self) -> InstanceReport:
        for name in ("vm_state", "power_state"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise PydanticCustomError(
                    "filemem_invalid", "{name} cannot be null", {"name": name}
                )
        return self

    def values(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self.model_fields_set}


Bytes = Annotated[int, Field(ge=0, le=2**63 - 1)]


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
