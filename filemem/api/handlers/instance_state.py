"""What every server action shares: nova's state check as a compare-and-swap, the lock rule,
and the instance-action record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from filemem.api.context import get_context
from filemem.api.errors import Conflict
from filemem.api.identity import get_caller
from filemem.api.request_id import request_id
from filemem.common import states
from filemem.db import api as db_api
from filemem.db import instance_actions as actions_db
from filemem.db.models import Instance


@dataclass(frozen=True)
class Transition:
    """An action allowed from these states sets task_state; the agent clears it when done."""

    name: str
    vm_states: tuple[str, ...]
    task_states: tuple[str | None, ...]
    task_state: str
    record: str


def caller_is_admin(request: Request) -> bool:
    """The caller's credential carries the admin role (the static admin token always does)."""
    return get_caller(request).is_admin


def check_lock(request: Request, instance: Instance) -> None:
    """nova's @check_instance_lock: a locked server refuses changes, except to admins."""
    if instance.locked_by is not None and not caller_is_admin(request):
        raise Conflict(f"Instance {instance.uuid} is locked")


def record(session: Session, request: Request, instance: Instance, action: str) -> None:
    actions_db.record_action(
        session,
        instance.uuid,
        action,
        request_id=request_id(request),
        project_id=instance.project_id,
        user_id=get_caller(request).user_id,
    )


def refusal(name: str, uuid: str, current: Instance | None, vm_states: tuple[str, ...]) -> str:
    vm_state = current.vm_state if current else states.DELETED
    if vm_state not in vm_states:
        return f"Cannot '{name}' instance {uuid} while it is in vm_state {vm_state}"
    task_state = current.task_state if current else None
    return f"Cannot '{name}' instance {uuid} while it is in task_state {task_state}"


def transition(
    request: Request, instance: Instance, step: Transition, values: dict[str, Any] | None = None
) -> None:
    """Compare-and-swap the instance into the step's task_state (and `values`), record the
    action, and wake the host's agent; 409 with nova's message when the state forbids it."""
    if instance.host is None:
        raise Conflict(
            f"Cannot '{step.name}' instance {instance.uuid}: it was never scheduled to a host"
        )
    with get_context(request).database.session() as session:
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
            raise Conflict(refusal(step.name, instance.uuid, current, step.vm_states))
        record(session, request, updated, step.record)
