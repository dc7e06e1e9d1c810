"""Server metadata: /servers/{id}/metadata[/{key}] with nova's bodies, codes and quota."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Path, Request, Response

from filemem.api import quota
from filemem.api.context import get_context
from filemem.api.errors import BadRequest, Conflict, NotFound
from filemem.api.handlers.servers import ServerIdPath, find_visible
from filemem.api.schemas.servers import MetadataRequest, MetaItemRequest
from filemem.common import states
from filemem.db import api as db_api
from filemem.db.models import Instance

MetaKeyPath = Annotated[str, Path(min_length=1, max_length=255)]
# nova's check_instance_state for metadata changes (task_state must be None).
WRITABLE_VM_STATES = (states.ACTIVE, states.PAUSED, states.SUSPENDED, states.STOPPED)
NO_ITEM = "Metadata item was not found"


def _refusal(action: str, instance: Instance) -> Conflict:
    if instance.vm_state not in WRITABLE_VM_STATES:
        attr, state = "vm_state", instance.vm_state
    else:
        attr, state = "task_state", str(instance.task_state)
    return Conflict(f"Cannot '{action}' instance {instance.uuid} while it is in {attr} {state}")


def _change(
    request: Request,
    server_id: str,
    action: str,
    edit: Callable[[dict[str, Any]], dict[str, Any]],
) -> dict[str, Any]:
    """Apply `edit` to the metadata when the state allows it (compare-and-swap); the result."""
    with get_context(request).database.session() as session:
        instance = find_visible(request, session, server_id)
        metadata = edit(dict(instance.metadata_ or {}))
        quota.check_metadata_items(request, session, instance.project_id, metadata)
        # No change row: metadata is nothing a host's agent acts on.
        updated = db_api.update_instance(
            session,
            instance.uuid,
            {"metadata_": metadata},
            expect_vm_states=WRITABLE_VM_STATES,
            expect_task_states=[None],
            expect_not_deleting=True,
            notify=False,
        )
        if updated is None:
            current = db_api.get_instance(session, instance.uuid, fresh=True)
            if current is None:
                raise NotFound(f"Instance {server_id} could not be found.")
            raise _refusal(action, current)
    return metadata


def list_metadata(request: Request, server_id: ServerIdPath) -> dict[str, Any]:
    """GET /servers/{id}/metadata."""
    with get_context(request).database.reader() as session:
        return {"metadata": dict(find_visible(request, session, server_id).metadata_ or {})}


def create_metadata(
    request: Request, server_id: ServerIdPath, body: MetadataRequest
) -> dict[str, Any]:
    """POST /servers/{id}/metadata: merge the items in; the whole metadata back."""
    merged = _change(request, server_id, "update metadata", lambda old: {**old, **body.metadata})
    return {"metadata": merged}


def replace_metadata(
    request: Request, server_id: ServerIdPath, body: MetadataRequest
) -> dict[str, Any]:
    """PUT /servers/{id}/metadata: the items become the whole metadata."""
    _change(request, server_id, "update metadata", lambda _old: dict(body.metadata))
    return {"metadata": dict(body.metadata)}


def show_metadata_item(
    request: Request, server_id: ServerIdPath, key: MetaKeyPath
) -> dict[str, Any]:
    """GET /servers/{id}/metadata/{key}."""
    with get_context(request).database.reader() as session:
        metadata = dict(find_visible(request, session, server_id).metadata_ or {})
    if key not in metadata:
        raise NotFound(NO_ITEM)
    return {"meta": {key: metadata[key]}}


def update_metadata_item(
    request: Request, server_id: ServerIdPath, key: MetaKeyPath, body: MetaItemRequest
) -> dict[str, Any]:
    """PUT /servers/{id}/metadata/{key}: {"meta": {key: value}}, the key as in the URL."""
    if key not in body.meta:
        raise BadRequest("Request body and URI mismatch")
    _change(request, server_id, "update metadata", lambda old: {**old, **body.meta})
    return {"meta": dict(body.meta)}


def delete_metadata_item(request: Request, server_id: ServerIdPath, key: MetaKeyPath) -> Response:
    """DELETE /servers/{id}/metadata/{key}: 204, or 404 for a key the server lacks."""

    def without(old: dict[str, Any]) -> dict[str, Any]:
        if key not in old:
            raise NotFound(NO_ITEM)
        return {k: v for k, v in old.items() if k != key}

    _change(request, server_id, "delete metadata", without)
    return Response(status_code=204)
