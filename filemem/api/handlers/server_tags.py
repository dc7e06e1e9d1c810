"""Server tags (2.26): /servers/{id}/tags[/{tag}] with nova's limits, codes and messages."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Path, Request, Response

from filemem.api.context import get_context
from filemem.api.errors import BadRequest, Conflict, NotFound
from filemem.api.handlers.servers import ServerIdPath, find_visible
from filemem.api.links import base_url
from filemem.api.microversion import require
from filemem.api.schemas.servers import MAX_TAGS, TagsRequest
from filemem.common import states
from filemem.db import api as db_api

TagPath = Annotated[str, Path(min_length=1, max_length=255)]
MAX_TAG_LENGTH = 60
# nova's _check_instance_in_valid_state for tag changes.
TAGGABLE_VM_STATES = (states.ACTIVE, states.PAUSED, states.SUSPENDED, states.STOPPED)
TAGS_SINCE = "2.26"


def _tag_problem(tag: str) -> str | None:
    """nova's parameter_types.tag, as its jsonschema error message."""
    if len(tag) > MAX_TAG_LENGTH:
        return f"'{tag}' is too long"
    if not re.match(r"^[^,/]*$", tag):
        return f"'{tag}' does not match '^[^,/]*$'"
    return None


def _change(
    request: Request, server_id: str, action: str, edit: Callable[[list[str]], list[str]]
) -> list[str]:
    """Apply `edit` to the tags when the vm_state allows it (compare-and-swap); the result."""
    with get_context(request).database.session() as session:
        instance = find_visible(request, session, server_id)
        if instance.vm_state not in TAGGABLE_VM_STATES:
            raise Conflict(
                f"Cannot '{action}' instance {server_id} while it is in vm_state "
                f"{instance.vm_state}"
            )
        tags = edit(list(instance.tags or []))
        updated = db_api.update_instance(
            session,
            instance.uuid,
            {"tags": tags},
            expect_vm_states=TAGGABLE_VM_STATES,
            notify=False,
        )
        if updated is None:
            raise Conflict(f"Cannot '{action}' instance {server_id}: its state changed meanwhile")
    return tags


def list_tags(request: Request, server_id: ServerIdPath) -> dict[str, Any]:
    """GET /servers/{id}/tags."""
    require(request, TAGS_SINCE)
    with get_context(request).database.reader() as session:
        return {"tags": list(find_visible(request, session, server_id).tags or [])}


def replace_tags(request: Request, server_id: ServerIdPath, body: TagsRequest) -> dict[str, Any]:
    """PUT /servers/{id}/tags: the set becomes the server's tags (duplicates count once)."""
    require(request, TAGS_SINCE)
    tags = _change(request, server_id, "update tags", lambda _old: list(dict.fromkeys(body.tags)))
    return {"tags": tags}


def delete_tags(request: Request, server_id: ServerIdPath) -> Response:
    """DELETE /servers/{id}/tags: 204."""
    require(request, TAGS_SINCE)
    _change(request, server_id, "delete tags", lambda _old: [])
    return Response(status_code=204)


def show_tag(request: Request, server_id: ServerIdPath, tag: TagPath) -> Response:
    """GET /servers/{id}/tags/{tag}: 204 when the server has it, 404 when not."""
    require(request, TAGS_SINCE)
    with get_context(request).database.reader() as session:
        tags = list(find_visible(request, session, server_id).tags or [])
    if tag not in tags:
        raise NotFound(f"Server {server_id} has no tag '{tag}'")
    return Response(status_code=204)


def add_tag(request: Request, server_id: ServerIdPath, tag: TagPath) -> Response:
    """PUT /servers/{id}/tags/{tag}: 201 with its Location when added, 204 when it was there."""
    require(request, TAGS_SINCE)
    problem = _tag_problem(tag)
    if problem is not None:
        raise BadRequest(
            f"Tag '{tag}' is invalid. It must be a non empty string without characters '/' "
            f"and ','. Validation error message: {problem}"
        )
    added: list[bool] = []

    def with_tag(old: list[str]) -> list[str]:
        if tag in old:
            return old
        if len(old) >= MAX_TAGS:
            raise BadRequest(f"The number of tags exceeded the per-server limit {MAX_TAGS}")
        added.append(True)
        return [*old, tag]

    _change(request, server_id, "update tag", with_tag)
    if not added:
        return Response(status_code=204)
    location = f"{base_url(request)}/v2.1/servers/{server_id}/tags/{tag}"
    return Response(status_code=201, headers={"Location": location})


def delete_tag(request: Request, server_id: ServerIdPath, tag: TagPath) -> Response:
    """DELETE /servers/{id}/tags/{tag}: 204, or 404 for a tag the server lacks."""
    require(request, TAGS_SINCE)

    def without(old: list[str]) -> list[str]:
        if tag not in old:
            raise NotFound(f"Instance {server_id} has no tag '{tag}'")
        return [t for t in old if t != tag]

    _change(request, server_id, "delete tag", without)
    return Response(status_code=204)
