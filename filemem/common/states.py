"""Nova's vm_state/task_state values and how they map to a server's API status."""

from __future__ import annotations

from typing import Final

BUILDING: Final = "building"
ACTIVE: Final = "active"
STOPPED: Final = "stopped"
PAUSED: Final = "paused"
SUSPENDED: Final = "suspended"
RESIZED: Final = "resized"
ERROR: Final = "error"
DELETED: Final = "deleted"
VM_STATES: Final = (BUILDING, ACTIVE, STOPPED, PAUSED, SUSPENDED, RESIZED, ERROR, DELETED)

SCHEDULING: Final = "scheduling"
SPAWNING: Final = "spawning"
POWERING_OFF: Final = "powering-off"
POWERING_ON: Final = "powering-on"
REBOOTING: Final = "rebooting"
REBOOTING_HARD: Final = "rebooting_hard"
DELETING: Final = "deleting"
PAUSING: Final = "pausing"
UNPAUSING: Final = "unpausing"
SUSPENDING: Final = "suspending"
RESUMING: Final = "resuming"
REBUILDING: Final = "rebuilding"
# The agent redefines the guest with the flavor the API now wants (resize and revert alike).
RESIZE_MIGRATING: Final = "resize_migrating"
RESIZE_REVERTING: Final = "resize_reverting"
# A live migration runs (nova's task_states.MIGRATING): the API sets and clears it.
MIGRATING: Final = "migrating"
# The agent writes the guest's disk to a new image (createImage, createBackup); the status
# stays what it was, as nova's does.
IMAGE_SNAPSHOT: Final = "image_snapshot"
TASK_STATES: Final = (
    SCHEDULING,
    SPAWNING,
    POWERING_OFF,
    POWERING_ON,
    REBOOTING,
    REBOOTING_HARD,
    DELETING,
    PAUSING,
    UNPAUSING,
    SUSPENDING,
    RESUMING,
    REBUILDING,
    RESIZE_MIGRATING,
    RESIZE_REVERTING,
    MIGRATING,
    IMAGE_SNAPSHOT,
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
    ACTIVE: {
        None: "ACTIVE",
        REBOOTING: "REBOOT",
        REBOOTING_HARD: "HARD_REBOOT",
        REBUILDING: "REBUILD",
        RESIZE_MIGRATING: "RESIZE",
        MIGRATING: "MIGRATING",
    },
    BUILDING: {None: "BUILD"},
    STOPPED: {None: "SHUTOFF", REBUILDING: "REBUILD", RESIZE_MIGRATING: "RESIZE"},
    PAUSED: {None: "PAUSED", MIGRATING: "MIGRATING"},
    SUSPENDED: {None: "SUSPENDED"},
    RESIZED: {None: "VERIFY_RESIZE", RESIZE_REVERTING: "REVERT_RESIZE"},
    ERROR: {None: "ERROR", REBUILDING: "REBUILD"},
    DELETED: {None: "DELETED"},
}
STATUSES: Final = frozenset(status for by_task in _STATUS.values() for status in by_task.values())
# The status of a vm_state outside the map (and the vm_states inside it).
UNKNOWN: Final = "UNKNOWN"
MAPPED_VM_STATES: Final = tuple(_STATUS)


def status_of(vm_state: str, task_state: str | None) -> str:
    by_task = _STATUS.get(vm_state)
    if by_task is None:
        return UNKNOWN
    return by_task.get(task_state, by_task[None])


def states_of(status: str) -> dict[str, tuple[frozenset[str], bool]]:
    """The inverse of status_of for the mapped vm_states, so a database can filter by status:
    vm_state -> (task_states, only). With `only`, the vm_state has `status` with just those
    task_states; without, with any task_state (or none) except those."""
    found: dict[str, tuple[frozenset[str], bool]] = {}
    for vm_state, by_task in _STATUS.items():
        named = {task: shown for task, shown in by_task.items() if task is not None}
        if by_task[None] == status:
            found[vm_state] = (frozenset(t for t, s in named.items() if s != status), False)
        elif status in named.values():
            found[vm_state] = (frozenset(t for t, s in named.items() if s == status), True)
    return found
