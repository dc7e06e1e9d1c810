"""Servers: create, list, list detail, show and delete (the workflow is the conductor's)."""

from __future__ import annotations

import logging
import re
import uuid as uuidlib
from typing import Annotated, Any

from fastapi import Path, Query, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from filemem.api.context import ApiContext, get_context
from filemem.api.errors import BadRequest, NotFound
from filemem.api.handlers import server_views as views
from filemem.api.schemas.common import is_flavor_id, is_uuid, ref_id
from filemem.api.schemas.servers import ServerCreate, ServerCreateRequest
from filemem.common import states
from filemem.db import api as db_api
from filemem.db.models import Instance

LOG = logging.getLogger(__name__)

ServerIdPath = Annotated[str, Path(max_length=255)]
MAX_LIMIT = 1000


def find(session: Session, server_id: str) -> Instance:
    instance = db_api.get_instance(session, server_id) if is_uuid(server_id) else None
    if instance is None:
        raise NotFound(f"Instance {server_id} could not be found.")
    return instance


def _new_instance(ctx: ApiContext, session: Session, spec: ServerCreate) -> Instance:
    """The row (building, scheduling) with a copy of the flavor, or 400 for a bad ref."""
    flavor_id = ref_id(spec.flavorRef)
    flavor = db_api.get_flavor(session, flavor_id) if is_flavor_id(flavor_id) else None
    if flavor is None:
        raise BadRequest(f"Flavor {flavor_id} could not be found. Invalid flavorRef provided.")
    image_id = ref_id(spec.image_ref)
    image = db_api.get_image(session, image_id) if is_uuid(image_id) else None
    if image is None:
        raise BadRequest(f"Image {image_id} could not be found. Invalid imageRef provided.")
    return db_api.create_instance(
        session,
        {
            "uuid": str(uuidlib.uuid4()),
            "display_name": spec.name,
            "project_id": ctx.project_id,
            "user_id": ctx.user_id,
            "flavor_id": flavor.flavorid,
            "flavor_name": flavor.name,
            "vcpus": flavor.vcpus,
            "memory_mb": flavor.memory_mb,
            "root_gb": flavor.root_gb,
            "extra_specs": flavor.specs(),
            "image_id": image.id,
            "metadata_": dict(spec.metadata or {}),
            "host": None,
            "vm_state": states.BUILDING,
            "task_state": states.SCHEDULING,
            "power_state": 0,
            "deleted_requested": False,
        },
    )


def create_server(request: Request, body: ServerCreateRequest) -> Response:
    """POST /servers: 202 once the server is scheduled (or in ERROR when nothing fits)."""
    ctx = get_context(request)
    with ctx.database.session() as session:
        instance = _new_instance(ctx, session, body.server)
    ctx.conductor.build(instance)
    server = {
        **views.summary(request, instance),
        "OS-DCF:diskConfig": "MANUAL",
        "security_groups": [{"name": "default"}],
    }
    return JSONResponse(
        {"server": server}, status_code=202, headers={"Location": server["links"][0]["href"]}
    )


def _name_filter(pattern: str | None) -> re.Pattern[str] | None:
    if pattern is None:
        return None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise BadRequest(f"Invalid regular expression for name: {exc}") from exc


def _filtered(
    ctx: ApiContext,
    *,
    name: str | None,
    status: str | None,
    host: str | None,
    flavor: str | None,
    image: str | None,
) -> list[Instance]:
    """nova's filters: name is a regular expression, status the API status."""
    matcher = _name_filter(name)
    with ctx.database.reader() as session:
        instances = db_api.list_instances(session, host=host, flavor_id=flavor, image_id=image)
    if matcher is not None:
        instances = [i for i in instances if matcher.search(i.display_name)]
    if status is not None:
        instances = [i for i in instances if views.status(i) == status.upper()]
    return instances


def _page(instances: list[Instance], limit: int | None, marker: str | None) -> list[Instance]:
    if marker is not None:
        uuids = [instance.uuid for instance in instances]
        if marker not in uuids:
            raise BadRequest(f"marker [{marker}] not found")
        instances = instances[uuids.index(marker) + 1 :]
    return instances[: min(limit, MAX_LIMIT) if limit is not None else MAX_LIMIT]


Filter = Annotated[str | None, Query(max_length=255)]
Limit = Annotated[int | None, Query(ge=0, le=2**31 - 1)]


def _listing(
    request: Request,
    name: str | None,
    status: str | None,
    host: str | None,
    flavor: str | None,
    image: str | None,
    limit: int | None,
    marker: str | None,
) -> tuple[list[Instance], list[dict[str, str]]]:
    instances = _filtered(
        get_context(request), name=name, status=status, host=host, flavor=flavor, image=image
    )
    page = _page(instances, limit, marker)
    links: list[dict[str, str]] = []
    if limit and page and len(page) == min(limit, MAX_LIMIT) and page[-1] is not instances[-1]:
        query = request.url.include_query_params(limit=limit, marker=page[-1].uuid)
        links.append({"rel": "next", "href": str(query)})
    return page, links


def list_servers(
    request: Request,
    name: Filter = None,
    status: Filter = None,
    host: Filter = None,
    flavor: Filter = None,
    image: Filter = None,
    limit: Limit = None,
    marker: Filter = None,
) -> dict[str, Any]:
    """GET /servers."""
    page, links = _listing(request, name, status, host, flavor, image, limit, marker)
    return _list_body([views.summary(request, i) for i in page], links)


def list_servers_detail(
    request: Request,
    name: Filter = None,
    status: Filter = None,
    host: Filter = None,
    flavor: Filter = None,
    image: Filter = None,
    limit: Limit = None,
    marker: Filter = None,
) -> dict[str, Any]:
    """GET /servers/detail."""
    page, links = _listing(request, name, status, host, flavor, image, limit, marker)
    return _list_body([views.detail(request, i) for i in page], links)


def _list_body(servers: list[dict[str, Any]], links: list[dict[str, str]]) -> dict[str, Any]:
    body: dict[str, Any] = {"servers": servers}
    if links:
        body["servers_links"] = links
    return body


def show_server(request: Request, server_id: ServerIdPath) -> dict[str, Any]:
    """GET /servers/{server_id}."""
    with get_context(request).database.reader() as session:
        return {"server": views.detail(request, find(session, server_id))}


def delete_server(request: Request, server_id: ServerIdPath) -> Response:
    """DELETE /servers/{server_id}: 204; the host's agent destroys it, unscheduled ones go now."""
    ctx = get_context(request)
    with ctx.database.reader() as session:
        instance = find(session, server_id)
    ctx.conductor.delete(instance)
    return Response(status_code=204)
