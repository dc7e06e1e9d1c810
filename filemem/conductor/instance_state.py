"""Server state changes: nova's state check as a compare-and-swap, recorded as an action."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from filemem.common import states
from filemem.db import api as db_api
from filemem.db import instance_actions as actions_db
from filemem.db.models import Instance
from filemem.db.session import Database
from filemem.exceptions import FilememError


class StateRefused(FilememError):
    """The instance's state forbids the action (nova's InstanceInvalidState): 409."""


@dataclass(frozen=True)
class Transition:
    """An action allowed from these states sets task_state; the agent clears it when done."""

    name: str
    vm_states: tuple[str, ...]
    task_states: tuple[str | None, ...]
    task_state: str
    record: str


@dataclass(frozen=True)
class Actor:
    """Who asked, as the instance action records it."""

    request_id: str
    user_id: str


def refusal(name: str, uuid: str, current: Instance | None, vm_states: tuple[str, ...]) -> str:
    vm_state = current.vm_state if current else states.DELETED
    if vm_state not in vm_states:
        return f"Cannot '{name}' instance {uuid} while it is in vm_state {vm_state}"
    task_state = current.task_state if current else None
    return f"Cannot '{name}' instance {uuid} while it is in task_state {task_state}"


def transition(
    database: Database,
    instance: Instance,
    step: Transition,
    actor: Actor,
    values: dict[str, Any] | None = None,
) -> None:
    """Compare-and-swap the instance into the step's task_state (and `values`), record the
    action, and wake the host's agent; StateRefused with nova's message when the state
    forbids it."""
    if instance.host is None:
        raise StateRefused(
            f"Cannot '{step.name}' instance {instance.uuid}: it was never scheduled to a host"
        )
    with database.session() as session:
        updated = db_api.update_instance(
            session,
            instance.uuid,
            {"task_state": step.task_state, **(values or {})},
            expect_vm_states=step.vm_states,
            expect_task_states=step.task_states,
            expect_not_deleting=True,
            expect_host=True,
        )
        if updated is None:
            current = db_api.get_instance(session, instance.uuid, fresh=True)
            raise StateRefused(refusal(step.name, instance.uuid, current, step.vm_states))
        actions_db.record_action(
            session,
            updated.uuid,
            step.record,
            request_id=actor.request_id,
            project_id=updated.project_id,
            user_id=actor.user_id,
        )
