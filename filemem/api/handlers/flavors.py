"""Flavors: list, detail, show, create and delete (admin), in nova's v2.1 JSON shapes."""

from __future__ import annotations

import uuid as uuidlib
from typing import Annotated, Any

from fastapi import Path, Query, Request, Response
from oslo_utils import strutils
from sqlalchemy.orm import Session

from filemem.api import policy
from filemem.api.context import get_context
from filemem.api.errors import BadRequest, Conflict, NotFound
from filemem.api.handlers import paging
from filemem.api.identity import get_caller
from filemem.api.links import resource_links
from filemem.api.schemas.common import MAX_NAME, is_flavor_id
from filemem.api.schemas.flavors import FlavorCreateRequest
from filemem.db import api as db_api
from filemem.db import projects as db_projects
from filemem.db.models import Flavor

FlavorIdPath = Annotated[str, Path(max_length=MAX_NAME)]


def summary(request: Request, flavor: Flavor) -> dict[str, Any]:
    return {
        "id": flavor.flavorid,
        "name": flavor.name,
        "links": resource_links(request, "flavors", flavor.flavorid),
    }


def detail(request: Request, flavor: Flavor) -> dict[str, Any]:
    return {
        **summary(request, flavor),
        "ram": flavor.memory_mb,
        "vcpus": flavor.vcpus,
        "disk": flavor.root_gb,
        "swap": "",
        "OS-FLV-EXT-DATA:ephemeral": 0,
        "OS-FLV-DISABLED:disabled": False,
        "os-flavor-access:is_public": flavor.is_public,
        "rxtx_factor": 1.0,
    }


def find(request: Request, session: Session, flavor_id: str) -> Flavor:
    """The flavor; a private one only for an admin or a project given access (404 else)."""
    flavor = db_api.get_flavor(session, flavor_id) if is_flavor_id(flavor_id) else None
    if flavor is not None and not policy.is_admin(request):
        project = get_caller(request).project_id
        flavor = flavor if db_projects.has_access(session, flavor, project) else None
    if flavor is None:
        raise NotFound(f"Flavor {flavor_id} could not be found.")
    return flavor


def _page(flavors: list[Flavor], limit: int | None, marker: str | None) -> list[Flavor]:
    if marker is not None:
        ids = [flavor.flavorid for flavor in flavors]
        if marker not in ids:
            raise BadRequest(f"marker [{marker}] not found")
        flavors = flavors[ids.index(marker) + 1 :]
    return flavors[: min(limit, paging.MAX_LIMIT) if limit is not None else paging.MAX_LIMIT]


Limit = Annotated[int | None, Query(ge=0, le=2**31 - 1)]
Marker = Annotated[str | None, Query(max_length=MAX_NAME)]
MinSize = Annotated[int, Query(ge=0, le=2**31 - 1)]


def _is_public(request: Request) -> bool | None:
    """nova's is_public filter, for admins only: absent is true (public ones, and private ones
    of the admin's project), "none" is every flavor, else a strict boolean; others get true."""
    value = request.query_params.get("is_public")
    if not policy.is_admin(request) or value is None:
        return True
    if value.strip().lower() == "none":
        return None
    try:
        return strutils.bool_from_string(value, strict=True)
    except ValueError as exc:
        raise BadRequest(f"Invalid is_public filter [{value}]") from exc


def _listing(
    request: Request, limit: int | None, marker: str | None, min_ram: int, min_disk: int
) -> list[Flavor]:
    is_public = _is_public(request)
    project = get_caller(request).project_id if is_public else None
    with get_context(request).database.reader() as session:
        flavors = db_api.list_flavors(
            session, min_ram=min_ram, min_disk=min_disk, is_public=is_public, project_id=project
        )
    return _page(flavors, limit, marker)


def list_flavors(
    request: Request,
    limit: Limit = None,
    marker: Marker = None,
    minRam: MinSize = 0,
    minDisk: MinSize = 0,
) -> dict[str, Any]:
    """GET /flavors."""
    flavors = _listing(request, limit, marker, minRam, minDisk)
    return _list_body(request, [summary(request, flavor) for flavor in flavors], "flavors")


def list_flavors_detail(
    request: Request,
    limit: Limit = None,
    marker: Marker = None,
    minRam: MinSize = 0,
    minDisk: MinSize = 0,
) -> dict[str, Any]:
    """GET /flavors/detail."""
    flavors = _listing(request, limit, marker, minRam, minDisk)
    return _list_body(request, [detail(request, flavor) for flavor in flavors], "flavors/detail")


def _list_body(request: Request, flavors: list[dict[str, Any]], path: str) -> dict[str, Any]:
    body: dict[str, Any] = {"flavors": flavors}
    # nova's flavors_links: a next link whenever the page is full.
    links = paging.next_links(request, flavors, path)
    if links:
        body["flavors_links"] = links
    return body


def show_flavor(request: Request, flavor_id: FlavorIdPath) -> dict[str, Any]:
    """GET /flavors/{flavor_id}."""
    with get_context(request).database.reader() as session:
        return {"flavor": detail(request, find(request, session, flavor_id))}


def create_flavor(request: Request, body: FlavorCreateRequest) -> dict[str, Any]:
    """POST /flavors (admin): 200 with the new flavor, 409 when the name or id is taken."""
    spec = body.flavor
    flavorid = spec.id if spec.id and spec.id != "auto" else str(uuidlib.uuid4())
    values = {
        "flavorid": flavorid,
        "name": spec.name,
        "vcpus": spec.vcpus,
        "memory_mb": spec.ram,
        "root_gb": spec.disk,
        "is_public": spec.is_public,
        "description": spec.description,
    }
    try:
        with get_context(request).database.session() as session:
            flavor = db_api.create_flavor(session, values)
            return {"flavor": detail(request, flavor)}
    except db_api.DuplicateEntry as exc:
        raise Conflict(str(exc)) from exc


def delete_flavor(request: Request, flavor_id: FlavorIdPath) -> Response:
    """DELETE /flavors/{flavor_id} (admin): 202; servers keep their copy of the flavor."""
    with get_context(request).database.session() as session:
        db_api.delete_flavor(session, find(request, session, flavor_id))
    return Response(status_code=202)
