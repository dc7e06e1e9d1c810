"""Nova's vm_state/task_state values and how they map to a server's API status."""

from __future__ import annotations

from typing import Final

BUILDING: Final = "building"
ACTIVE: Final = "active"
STOPPED: Final = "stopped"
ERROR: Final = "error"
DELETED: Final = "deleted"
VM_STATES: Final = (BUILDING, ACTIVE, STOPPED, ERROR, DELETED)

SCHEDULING: Final = "scheduling"
SPAWNING: Final = "spawning"
POWERING_OFF: Final = "powering-off"
POWERING_ON: Final = "powering-on"
REBOOTING: Final = "rebooting"
REBOOTING_HARD: Final = "rebooting_hard"
DELETING: Final = "deleting"
TASK_STATES: Final = (
    SCHEDULING,
    SPAWNING,
    POWERING_OFF,
    POWERING_ON,
    REBOOTING,
    REBOOTING_HARD,
    DELETING,
)

POWER_STATES: Final = {
    0: "NOSTATE",
    1: "RUNNING",
    3: "PAUSED",
    4: "SHUTDOWN",
    6: "CRASHED",
    7: "SUSPENDED",
}

# nova/api/openstack/common.py _STATE_MAP, restricted to the states filemem uses.
_STATUS: Final[dict[str, dict[str | None, str]]] = {
    ACTIVE: {None: "ACTIVE", REBOOTING: "REBOOT", REBOOTING_HARD: "HARD_REBOOT"},
    BUILDING: {None: "BUILD"},
    STOPPED: {None: "SHUTOFF"},
    ERROR: {None: "ERROR"},
    DELETED: {None: "DELETED"},
}
STATUSES: Final = frozenset(status for by_task in _STATUS.values() for status in by_task.values())


def status_of(vm_state: str, task_state: str | None) -> str:
    by_task = _STATUS.get(vm_state)
    if by_task is None:
        return "UNKNOWN"
    return by_task.get(task_state, by_task[None])
