"""What every server action shares in the API: the lock rule, the instance-action record,
and the state change (decided by filemem.conductor.instance_state) answered as a 409."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from filemem.api.context import get_context
from filemem.api.errors import Conflict
from filemem.api.identity import get_caller
from filemem.api.request_id import request_id
from filemem.conductor import instance_state as conductor
from filemem.db import instance_actions as actions_db
from filemem.db.models import Instance


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


def transition(
    request: Request,
    instance: Instance,
    step: conductor.Transition,
    values: dict[str, Any] | None = None,
) -> None:
    """The conductor's state change for this request; 409 with nova's message when the
    state forbids it."""
    actor = conductor.Actor(request_id(request), get_caller(request).user_id)
    try:
        conductor.transition(get_context(request).database, instance, step, actor, values)
    except conductor.StateRefused as exc:
        raise Conflict(str(exc)) from exc
