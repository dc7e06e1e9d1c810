"""Instance actions and their events (nova's os-instance-actions records)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session

from filemem.db.models import InstanceAction, InstanceActionEvent, utcnow

# nova's action names (nova/compute/instance_actions.py) for what filemem does.
CREATE = "create"
DELETE = "delete"
STOP = "stop"
START = "start"
REBOOT = "reboot"
PAUSE = "pause"
UNPAUSE = "unpause"
SUSPEND = "suspend"
RESUME = "resume"
LOCK = "lock"
UNLOCK = "unlock"
REBUILD = "rebuild"
RESIZE = "resize"
CONFIRM_RESIZE = "confirmResize"
REVERT_RESIZE = "revertResize"
TRIGGER_CRASH_DUMP = "trigger_crash_dump"
CREATE_IMAGE = "createImage"
CREATE_BACKUP = "createBackup"
LIVE_MIGRATION = "live-migration"
UPDATE = "update"

SUCCESS = "Success"
ERROR = "Error"


def record_action(
    session: Session,
    instance_uuid: str,
    action: str,
    *,
    request_id: str,
    project_id: str,
    user_id: str,
) -> InstanceAction:
    """Start an action record; its events follow as the API, conductor and agent work."""
    now = utcnow()
    row = InstanceAction(
        action=action,
        instance_uuid=instance_uuid,
        request_id=request_id,
        project_id=project_id,
        user_id=user_id,
        start_time=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    return row


def latest_action(session: Session, instance_uuid: str) -> InstanceAction | None:
    """The instance's newest action: the one an agent's event belongs to."""
    query = (
        select(InstanceAction)
        .where(InstanceAction.instance_uuid == instance_uuid)
        .order_by(InstanceAction.id.desc())
        .limit(1)
    )
    return session.scalars(query).first()


def add_event(
    session: Session,
    action: InstanceAction,
    event: str,
    *,
    result: str | None,
    host: str | None = None,
    start_time: dt.datetime | None = None,
    finish_time: dt.datetime | None = None,
    traceback: str | None = None,
) -> InstanceActionEvent:
    """Append a finished (or started, result None) event; an Error event sets the message."""
    now = utcnow()
    row = InstanceActionEvent(
        action=action,
        event=event,
        result=result,
        host=host,
        start_time=start_time or now,
        finish_time=finish_time if finish_time is not None else (now if result else None),
        traceback=traceback,
    )
    session.add(row)
    action.updated_at = now
    if result == ERROR:
        action.message = ERROR
    session.flush()
    return row


def list_actions(session: Session, instance_uuid: str) -> list[InstanceAction]:
    """Newest first, as nova lists them."""
    query = (
        select(InstanceAction)
        .where(InstanceAction.instance_uuid == instance_uuid)
        .order_by(InstanceAction.start_time.desc(), InstanceAction.id.desc())
    )
    return list(session.scalars(query))


def get_action(session: Session, instance_uuid: str, request_id: str) -> InstanceAction | None:
    query = select(InstanceAction).where(
        InstanceAction.instance_uuid == instance_uuid, InstanceAction.request_id == request_id
    )
    return session.scalars(query).first()
