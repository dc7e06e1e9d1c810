"""os-instance-actions: a server's actions and their events (nova's shapes up to 2.57)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Path, Request

from filemem.api import policy
from filemem.api.context import get_context
from filemem.api.errors import NotFound
from filemem.api.handlers.servers import ServerIdPath, visible_project
from filemem.api.microversion import at_least
from filemem.api.schemas.common import is_uuid
from filemem.db import api as db_api
from filemem.db import instance_actions
from filemem.db.models import InstanceAction, InstanceActionEvent

RequestIdPath = Annotated[str, Path(min_length=1, max_length=255)]


def _time(value: dt.datetime | None) -> str | None:
    """nova's serialisation of these timestamps: naive ISO with microseconds."""
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%f")


def _action(row: InstanceAction) -> dict[str, Any]:
    return {
        "action": row.action,
        "instance_uuid": row.instance_uuid,
        "request_id": row.request_id,
        "user_id": row.user_id,
        "project_id": row.project_id,
        "start_time": _time(row.start_time),
        "message": row.message,
    }


def _event(row: InstanceActionEvent) -> dict[str, Any]:
    # The caller is the admin: nova shows it the events with their tracebacks.
    return {
        "event": row.event,
        "start_time": _time(row.start_time),
        "finish_time": _time(row.finish_time),
        "result": row.result,
        "traceback": row.traceback,
    }


EVENTS_RULE = "os_compute_api:os-instance-actions:events"


def _check_server(request: Request, server_id: str) -> str:
    """The server's uuid; from 2.21 a deleted server's actions are still served (filemem
    deletes the row, so a server is known by the actions it left)."""
    not_found = NotFound(f"Instance {server_id} could not be found.")
    if not is_uuid(server_id):
        raise not_found
    project = visible_project(request)
    with get_context(request).database.reader() as session:
        instance = db_api.get_instance(session, server_id)
        if instance is not None:
            if project is None or instance.project_id == project:
                return server_id
            raise not_found
        actions = (
            instance_actions.list_actions(session, server_id) if at_least(request, "2.21") else []
        )
        if actions and (project is None or actions[-1].project_id == project):
            return server_id
    raise not_found


def list_instance_actions(request: Request, server_id: ServerIdPath) -> dict[str, Any]:
    """GET /servers/{id}/os-instance-actions: newest first."""
    uuid = _check_server(request, server_id)
    with get_context(request).database.reader() as session:
        rows = instance_actions.list_actions(session, uuid)
        return {"instanceActions": [_action(row) for row in rows]}


def show_instance_action(
    request: Request, server_id: ServerIdPath, request_id: RequestIdPath
) -> dict[str, Any]:
    """GET /servers/{id}/os-instance-actions/{request_id}: the action with its events."""
    uuid = _check_server(request, server_id)
    with get_context(request).database.reader() as session:
        row = instance_actions.get_action(session, uuid, request_id)
        if row is None:
            raise NotFound(f"Action {request_id} not found")
        action = _action(row)
        # nova shows the events only to whom os-instance-actions:events allows.
        if not policy.allowed(request, EVENTS_RULE):
            return {"instanceAction": action}
        return {"instanceAction": {**action, "events": [_event(e) for e in row.events]}}
