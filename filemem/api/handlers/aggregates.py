"""os-aggregates: host aggregates in nova's shapes and codes, mirrored into Placement, with
the seed's rule enforced: a file-backed host never sits in an aggregate whose
ram_allocation_ratio is not 1.0 (409, filemem.common.aggregates says why)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from filemem.api import policy
from filemem.api.context import ApiContext, get_context
from filemem.api.errors import BadRequest, Conflict, NotFound
from filemem.api.policies import compute as policies
from filemem.api.schemas.aggregates import (
    AggregateAction,
    AggregateCreateRequest,
    AggregateUpdateRequest,
)
from filemem.common import aggregates as rules
from filemem.conductor import aggregates as mirror
from filemem.db import aggregates as db_aggregates
from filemem.db import api as db_api
from filemem.db.api import DuplicateEntry
from filemem.db.models import MAX_INTEGER, Aggregate


def view(aggregate: Aggregate, *, short: bool = False) -> dict[str, Any]:
    """nova's aggregate body; `short` (create's answer) leaves hosts and metadata out."""
    body: dict[str, Any] = {
        "availability_zone": aggregate.availability_zone,
        "created_at": aggregate.created_at.isoformat(),
        "deleted": False,
        "deleted_at": None,
        "hosts": aggregate.hosts,
        "id": aggregate.id,
        "metadata": aggregate.metadata_dict,
        "name": aggregate.name,
        "updated_at": aggregate.updated_at.isoformat() if aggregate.updated_at else None,
    }
    if short:
        del body["hosts"], body["metadata"]
    return body


def _id(aggregate_id: str) -> int:
    """nova's validate_integer(id, 'id'): 400 for anything but an integer."""
    try:
        return int(aggregate_id)
    except ValueError:
        raise BadRequest("Invalid input received: id must be an integer") from None


def _find(session: Session, aggregate_id: str) -> Aggregate:
    number = _id(aggregate_id)
    row = db_aggregates.get(session, number) if -MAX_INTEGER <= number <= MAX_INTEGER else None
    if row is None:
        raise NotFound(f"Aggregate {aggregate_id} could not be found.")
    return row


def list_aggregates(request: Request) -> dict[str, Any]:
    """GET /os-aggregates."""
    with get_context(request).database.reader() as session:
        return {"aggregates": [view(a) for a in db_aggregates.list_all(session)]}


def create_aggregate(request: Request, body: AggregateCreateRequest) -> dict[str, Any]:
    """POST /os-aggregates: 200 (as nova) without hosts and metadata; 409 for a taken name."""
    spec = body.aggregate
    try:
        with get_context(request).database.session() as session:
            row = db_aggregates.create(session, spec.name, spec.availability_zone)
            return {"aggregate": view(row, short=True)}
    except DuplicateEntry as exc:
        raise Conflict(str(exc)) from exc


def show_aggregate(request: Request, aggregate_id: str) -> dict[str, Any]:
    """GET /os-aggregates/{id}."""
    with get_context(request).database.reader() as session:
        return {"aggregate": view(_find(session, aggregate_id))}


def _check_zone(
    session: Session,
    aggregate: Aggregate,
    changes: Mapping[str, str | None],
    hosts: Iterable[str] | None,
    check_instances: bool,
) -> str | None:
    """nova's is_safe_to_update_az: why the change of zone is refused, or None."""
    if rules.AZ_KEY not in changes:
        return None
    zone = changes[rules.AZ_KEY]
    if not zone:
        return f"Aggregate {aggregate.name} does not support empty named availability zone"
    members = list(hosts) if hosts is not None else aggregate.hosts
    others = [
        db_aggregates.facts(a)
        for host_aggregates in db_aggregates.for_hosts(session, members).values()
        for a in host_aggregates
    ]
    conflicting = rules.zone_conflicts(zone, aggregate.id, others)
    if conflicting:
        return f"One or more hosts already in availability zone(s) {conflicting}"
    moving = check_instances and aggregate.availability_zone != zone
    if moving and any(db_api.list_instances(session, host=host) for host in members):
        return "One or more hosts contain instances in this zone"
    return None


def update_aggregate(
    request: Request, aggregate_id: str, body: AggregateUpdateRequest
) -> dict[str, Any]:
    """PUT /os-aggregates/{id}: rename and/or move to another zone (400 when a host would be
    in two zones or has servers)."""
    spec = body.aggregate
    try:
        with get_context(request).database.session() as session:
            row = _find(session, aggregate_id)
            if spec.name is not None:
                db_aggregates.rename(session, row, spec.name)
            if "availability_zone" in spec.model_fields_set:
                changes = {rules.AZ_KEY: spec.availability_zone}
                why = _check_zone(session, row, changes, None, check_instances=True)
                if why is not None:
                    raise BadRequest(f"Cannot update aggregate {row.id}. Reason: {why}.")
                db_aggregates.update_metadata(session, row, changes)
            return {"aggregate": view(row)}
    except DuplicateEntry as exc:
        raise Conflict(str(exc)) from exc


def delete_aggregate(request: Request, aggregate_id: str) -> Response:
    """DELETE /os-aggregates/{id}: 200 with no body (as nova); 400 while it has hosts."""
    with get_context(request).database.session() as session:
        row = _find(session, aggregate_id)
        if row.hosts:
            raise BadRequest(
                f"Cannot remove host from aggregate {row.id}. Reason: Host aggregate is not empty."
            )
        db_aggregates.delete(session, row)
    return Response(status_code=200)


def aggregate_action(request: Request, aggregate_id: str, body: AggregateAction) -> Any:
    """POST /os-aggregates/{id}/action: add_host, remove_host or set_metadata; 200 with the
    aggregate."""
    ctx = get_context(request)
    action = next(
        name
        for name in ("add_host", "remove_host", "set_metadata")
        if getattr(body, name) is not None
    )
    policy.authorize(request, policies.AGGREGATE % action)
    if body.add_host is not None:
        result, hosts = _add_host(ctx, aggregate_id, body.add_host.host)
    elif body.remove_host is not None:
        result, hosts = _remove_host(ctx, aggregate_id, body.remove_host.host)
    else:
        assert body.set_metadata is not None
        result, hosts = _set_metadata(ctx, aggregate_id, body.set_metadata.metadata)
    mirror.sync_hosts(ctx.database, ctx.placement, hosts)
    return JSONResponse({"aggregate": result})


def _add_host(ctx: ApiContext, aggregate_id: str, host: str) -> tuple[dict[str, Any], list[str]]:
    with ctx.database.session() as session:
        service = db_api.get_service_by_host(session, host)
        if service is None:
            raise NotFound(f"Compute host {host} could not be found.")
        row = _find(session, aggregate_id)
        refused = f"Cannot add host to aggregate {row.id}. Reason: {{}}."
        why = _check_zone(session, row, row.metadata_dict, [host], check_instances=False)
        if why is None:
            why = _zone_move(session, row, host, joining=True)
        if why is None:
            why = rules.add_host_refusal(host, service.file_backed, db_aggregates.facts(row))
        if why is not None:
            raise Conflict(refused.format(why))
        if not db_aggregates.add_host(session, row, host):
            raise Conflict(f"Aggregate {row.id} already has host {host}.")
        return view(row), [host]


def _zone_move(session: Session, aggregate: Aggregate, host: str, *, joining: bool) -> str | None:
    """nova's ensure_no_instances_need_to_move_az_when_host_added/removed."""
    zone = aggregate.availability_zone
    if zone is None:
        return None
    instances = db_api.list_instances(session, host=host)
    if not instances:
        return None
    others = [a for a in db_aggregates.for_host(session, host) if a.id != aggregate.id]
    current = next((a.availability_zone for a in others if a.availability_zone), None)
    old, new = (current, zone) if joining else (zone, current)
    if old == new:
        return None
    what = "added to" if joining else "removed from"
    return (
        f"The host cannot be {what} the aggregate as the availability zone of the host "
        f"would change from '{old}' to '{new}' but the host already has {len(instances)} "
        "instance(s). Changing the AZ of an existing instance is not supported by this action. "
        "Move the instances away from this host then try again"
    )


def _remove_host(ctx: ApiContext, aggregate_id: str, host: str) -> tuple[dict[str, Any], list[str]]:
    not_found = NotFound(f"Cannot remove host {host} in aggregate {aggregate_id}")
    with ctx.database.session() as session:
        if db_api.get_service_by_host(session, host) is None:
            raise not_found
        _id(aggregate_id)
        try:
            row = _find(session, aggregate_id)
        except NotFound:
            raise not_found from None
        if host not in row.hosts:
            raise not_found
        why = _zone_move(session, row, host, joining=False)
        if why is not None:
            raise Conflict(f"Cannot remove host from aggregate {row.id}. Reason: {why}.")
        db_aggregates.remove_host(session, row, host)
        return view(row), [host]


def _set_metadata(
    ctx: ApiContext, aggregate_id: str, changes: Mapping[str, str | None]
) -> tuple[dict[str, Any], list[str]]:
    with ctx.database.session() as session:
        row = _find(session, aggregate_id)
        why = _check_zone(session, row, changes, None, check_instances=True)
        if why is not None:
            raise BadRequest(f"Cannot update metadata of aggregate {row.id}. Reason: {why}.")
        file_backed = [
            s.host for s in db_api.list_services(session) if s.file_backed and s.host in row.hosts
        ]
        why = rules.metadata_refusal(db_aggregates.facts(row), changes, file_backed)
        if why is not None:
            raise Conflict(f"Cannot update metadata of aggregate {row.id}. Reason: {why}.")
        db_aggregates.update_metadata(session, row, changes)
        return view(row), row.hosts
