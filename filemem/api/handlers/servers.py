"""Servers: list, list detail, show, update and delete (create is server_create's)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Annotated, Any

from fastapi import Path, Query, Request, Response
from oslo_utils import strutils, timeutils
from sqlalchemy.orm import Session

from filemem.api import policy
from filemem.api.context import ApiContext, get_context
from filemem.api.errors import BadRequest, NotFound
from filemem.api.handlers import network_views, paging
from filemem.api.handlers import server_views as views
from filemem.api.identity import get_caller
from filemem.api.microversion import at_least
from filemem.api.name_filter import literal_hints, name_matcher
from filemem.api.policies import servers as policies
from filemem.api.request_id import request_id
from filemem.api.schemas.common import is_uuid
from filemem.api.schemas.servers import ServerUpdateRequest
from filemem.db import api as db_api
from filemem.db import instance_actions, instance_list
from filemem.db.models import Instance

LOG = logging.getLogger(__name__)

ServerIdPath = Annotated[str, Path(max_length=255)]


def find(session: Session, server_id: str, project_id: str | None = None) -> Instance:
    """The instance; 404 (nova's message) when there is none, or it is not `project_id`'s."""
    instance = db_api.get_instance(session, server_id) if is_uuid(server_id) else None
    if instance is None or (project_id is not None and instance.project_id != project_id):
        raise NotFound(f"Instance {server_id} could not be found.")
    return instance


def visible_project(request: Request) -> str | None:
    """nova's project_only lookups: an admin context finds any project's server, any other
    caller only its own project's (another project's server is a 404, never a 403)."""
    return None if policy.is_admin(request) else get_caller(request).project_id


def find_visible(request: Request, session: Session, server_id: str) -> Instance:
    return find(session, server_id, visible_project(request))


def _page(
    ctx: ApiContext,
    filters: instance_list.InstanceFilters,
    name: str | None,
    limit: int,
    marker: str | None,
) -> list[Instance]:
    """One page in SQL; name is nova's regular expression, matched by RE2 (linear time) on
    the rows SQL narrowed by the pattern's literal prefix or part."""
    matcher = name_matcher(name) if name is not None else None
    if name is not None:
        prefix, part = literal_hints(name)
        filters = dataclasses.replace(filters, name_prefix=prefix, name_part=part)
    try:
        with ctx.database.reader() as session:
            return instance_list.page(session, filters, limit=limit, marker=marker, name=matcher)
    except instance_list.MarkerNotFound as exc:
        raise BadRequest(str(exc)) from exc


Filter = Annotated[str | None, Query(max_length=255)]
TAG_PARAMETERS = ("tags", "tags-any", "not-tags", "not-tags-any")
# 50 tags of 60 characters and their commas fit; the bound keeps a query from being huge.
MAX_TAG_QUERY = 4096


def _tag_filter(request: Request) -> instance_list.TagFilter | None:
    """The tag filters, from 2.26 (nova ignores them before): comma-separated tags."""
    if not at_least(request, "2.26"):
        return None
    sets: list[frozenset[str]] = []
    for parameter in TAG_PARAMETERS:
        value = request.query_params.get(parameter)
        if value is not None and len(value) > MAX_TAG_QUERY:
            raise BadRequest(f"Invalid input for query parameter {parameter}: too long")
        sets.append(frozenset(t for t in (value or "").split(",") if t))
    return instance_list.TagFilter(*sets) if any(sets) else None


Limit = Annotated[int | None, Query(ge=0, le=2**31 - 1)]


def _timestamp(request: Request, parameter: str) -> dt.datetime | None:
    """An ISO 8601 query parameter as naive UTC (as stored), or None when absent."""
    value = request.query_params.get(parameter)
    if value is None:
        return None
    try:
        return timeutils.normalize_time(timeutils.parse_isotime(value))
    except ValueError as exc:
        raise BadRequest(f"Invalid input for query parameters {parameter}. {exc}") from exc


def _all_tenants(request: Request) -> bool:
    """nova's is_all_tenants: present without a value is true, else a strict boolean."""
    value = request.query_params.get("all_tenants")
    if value is None:
        return False
    if value == "":
        return True
    try:
        return strutils.bool_from_string(value, strict=True)
    except ValueError as exc:
        raise BadRequest(f"Invalid input for query parameters all_tenants. {exc}") from exc


def _project_scope(request: Request, detail: bool) -> tuple[str | None, bool]:
    """(the project to list, whether admin-only filters apply), as nova's _get_servers:
    all_tenants needs ...:get_all_tenants (403 otherwise) and then lists every project or the
    one named by project_id/tenant_id; without it the caller's own project, and a non-admin's
    admin-only filters (host, project_id, tenant_id) are dropped silently."""
    all_filters = policy.allowed(request, policies.ALLOW_ALL_FILTERS)
    if _all_tenants(request):
        policy.authorize(
            request, policies.DETAIL_ALL_TENANTS if detail else policies.INDEX_ALL_TENANTS
        )
        params = request.query_params
        named = params.get("project_id") or params.get("tenant_id") if all_filters else None
        return named, all_filters
    return get_caller(request).project_id, all_filters


def _listing(
    request: Request,
    name: str | None,
    status: str | None,
    host: str | None,
    flavor: str | None,
    image: str | None,
    limit: int | None,
    marker: str | None,
    detail: bool = False,
) -> list[Instance]:
    project_id, all_filters = _project_scope(request, detail)
    filters = instance_list.InstanceFilters(
        project_id=project_id,
        status=status.upper() if status is not None else None,
        host=host if all_filters else None,
        flavor_id=flavor,
        image_id=image,
        tags=_tag_filter(request),
        # nova's changes-since (changes-before is 2.66's, beyond filemem's 2.37).
        changes_since=_timestamp(request, "changes-since"),
    )
    # limit=0 is an empty page here (as before), where paging.page_size reads it as no limit.
    size = min(limit, paging.MAX_LIMIT) if limit is not None else paging.MAX_LIMIT
    return _page(get_context(request), filters, name, size, marker)


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
    page = _listing(request, name, status, host, flavor, image, limit, marker)
    return _list_body(request, [views.summary(request, i) for i in page], "servers")


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
    page = _listing(request, name, status, host, flavor, image, limit, marker, True)
    statuses = views.host_statuses(request, page) if at_least(request, "2.16") else {}
    network_views.prefetch(request, page)
    servers = [views.detail(request, i, statuses) for i in page]
    return _list_body(request, servers, "servers/detail")


def _list_body(request: Request, servers: list[dict[str, Any]], path: str) -> dict[str, Any]:
    body: dict[str, Any] = {"servers": servers}
    # nova's servers_links: a next link whenever the page is full.
    links = paging.next_links(request, servers, path)
    if links:
        body["servers_links"] = links
    return body


def show_server(request: Request, server_id: ServerIdPath) -> dict[str, Any]:
    """GET /servers/{server_id}."""
    with get_context(request).database.reader() as session:
        return {"server": views.detail(request, find_visible(request, session, server_id))}


def update_server(
    request: Request, server_id: ServerIdPath, body: ServerUpdateRequest
) -> dict[str, Any]:
    """PUT /servers/{server_id}: name, description (2.19); nova records no action for it."""
    spec = body.server
    given = spec.model_fields_set
    if "description" in given and not at_least(request, "2.19"):
        raise BadRequest(
            "Additional properties are not allowed (server.description was unexpected)"
        )
    if "name" in given and spec.name is None:
        raise BadRequest(
            "Invalid input for field/attribute server.name: None is not of type 'string'"
        )
    values: dict[str, Any] = {}
    if spec.name is not None:
        values["display_name"] = spec.name
    if "description" in given:
        values["description"] = spec.description
    with get_context(request).database.session() as session:
        instance = find_visible(request, session, server_id)
        if values:
            # No change row: a name or description is nothing a host's agent acts on.
            updated = db_api.update_instance(session, instance.uuid, values, notify=False)
            if updated is None:
                raise NotFound("Instance could not be found")
            instance = updated
        return {"server": views.update_view(request, instance)}


def delete_server(request: Request, server_id: ServerIdPath) -> Response:
    """DELETE /servers/{server_id}: 204; the host's agent destroys it, unscheduled ones go now."""
    ctx = get_context(request)
    with ctx.database.session() as session:
        instance = find_visible(request, session, server_id)
        instance_actions.record_action(
            session,
            instance.uuid,
            instance_actions.DELETE,
            request_id=request_id(request),
            project_id=instance.project_id,
            user_id=get_caller(request).user_id,
        )
    ctx.conductor.delete(instance)
    return Response(status_code=204)
