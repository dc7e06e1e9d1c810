"""os-services: list compute services; enable, disable, (2.11) force down and delete a host."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query, Request

from filemem.api.context import ApiContext, get_context
from filemem.api.errors import BadRequest, Conflict, NotFound
from filemem.api.microversion import at_least
from filemem.api.schemas.services import ServiceDisableWithReason, ServiceForceDown, ServiceToggle
from filemem.db import aggregates as db_aggregates
from filemem.db import api as db_api
from filemem.db import server_migrations as migrations_db
from filemem.db.models import MAX_INTEGER, Service, utcnow
from filemem.placement.client import PlacementConflict

FORCED_DOWN_SINCE = "2.11"
# filemem's agents register as filemem-compute; clients name nova's compute binary, and both
# mean the same service.
COMPUTE_BINARIES = frozenset({"nova-compute", "filemem-compute"})


def is_up(ctx: ApiContext, service: Service) -> bool:
    """Heard from lately and not forced down (nova's servicegroup answers the same)."""
    return not service.forced_down and db_api.is_up(service, ctx.down_after)


def state(ctx: ApiContext, service: Service) -> str:
    return "up" if is_up(ctx, service) else "down"


def view(request: Request, service: Service) -> dict[str, Any]:
    ctx = get_context(request)
    shown: dict[str, Any] = {
        "id": service.id,
        "binary": service.binary,
        "host": service.host,
        "zone": "nova",
        "status": "disabled" if service.disabled else "enabled",
        "state": state(ctx, service),
        "updated_at": (
            service.last_seen_at.isoformat(timespec="microseconds")
            if service.last_seen_at
            else None
        ),
        "disabled_reason": service.disabled_reason,
    }
    if at_least(request, FORCED_DOWN_SINCE):
        shown["forced_down"] = service.forced_down
    return shown


def _binary_matches(service: Service, binary: str) -> bool:
    return binary == service.binary or (
        binary in COMPUTE_BINARIES and service.binary in COMPUTE_BINARIES
    )


Filter = Annotated[str | None, Query(max_length=255)]


def list_services(request: Request, host: Filter = None, binary: Filter = None) -> dict[str, Any]:
    """GET /os-services[?host=&binary=]; forced_down from 2.11."""
    with get_context(request).database.reader() as session:
        services = db_api.list_services(session)
    services = [
        s
        for s in services
        if (not host or s.host == host) and (not binary or _binary_matches(s, binary))
    ]
    return {"services": [view(request, service) for service in services]}


def _update(request: Request, body: ServiceToggle, values: dict[str, Any]) -> None:
    """nova's _update: only the compute service may be changed, and it must exist."""
    if body.binary not in COMPUTE_BINARIES:
        raise BadRequest(
            f"Updating a {body.binary} service is not supported. Only nova-compute services "
            "can be updated."
        )
    ctx = get_context(request)
    with ctx.database.session() as session:
        service = db_api.get_service_by_host(session, body.host)
        if service is None or not _binary_matches(service, body.binary):
            raise NotFound(f"Could not find binary {body.binary} on host {body.host}.")
        for key, value in values.items():
            setattr(service, key, value)
        service.updated_at = utcnow()
    ctx.scheduler.invalidate_hosts()


def _toggle(
    request: Request, body: ServiceToggle, disabled: bool, reason: str | None
) -> dict[str, Any]:
    _update(request, body, {"disabled": disabled, "disabled_reason": reason})
    result = {
        "host": body.host,
        "binary": body.binary,
        "status": "disabled" if disabled else "enabled",
    }
    if reason is not None:
        result["disabled_reason"] = reason
    return {"service": result}


def enable_service(request: Request, body: ServiceToggle) -> dict[str, Any]:
    """PUT /os-services/enable: new guests may be scheduled to the host again."""
    return _toggle(request, body, False, None)


def disable_service(request: Request, body: ServiceToggle) -> dict[str, Any]:
    """PUT /os-services/disable: no new guests on the host; running ones stay."""
    return _toggle(request, body, True, None)


def disable_log_reason(request: Request, body: ServiceDisableWithReason) -> dict[str, Any]:
    """PUT /os-services/disable-log-reason."""
    return _toggle(request, body, True, body.disabled_reason)


def force_down(request: Request, body: ServiceForceDown) -> dict[str, Any]:
    """PUT /os-services/force-down (2.11): the host counts as down, so nothing is scheduled
    to it, until an operator unsets the flag; before 2.11 nova knows no such action."""
    if not at_least(request, FORCED_DOWN_SINCE):
        raise NotFound("Unknown action")
    forced = body.forced()
    if forced is None:
        raise BadRequest("Missing forced_down field")
    _update(request, body, {"forced_down": forced})
    return {"service": {"host": body.host, "binary": body.binary, "forced_down": forced}}


ServiceIdPath = Annotated[str, Path(max_length=255)]


def delete_service(request: Request, service_id: ServiceIdPath) -> None:
    """DELETE /os-services/{id}: the service, its aggregate memberships and its resource
    provider go; 409 while the host still has instances or live migrations (nova's rule)."""
    ctx = get_context(request)
    # ASCII digits only: str.isdigit() is also true of "³", which int() refuses.
    if not (service_id.isascii() and service_id.isdigit()):
        raise BadRequest(f"Invalid uuid {service_id}")
    with ctx.database.session() as session:
        number = int(service_id)
        service = db_api.get_service(session, number) if number <= MAX_INTEGER else None
        if service is None:
            raise NotFound(f"Service {service_id} not found.")
        hosting = db_api.count_instances_by_host(session).get(service.host, 0)
        if hosting:
            raise Conflict(
                "Unable to delete compute service that is hosting instances. Migrate or "
                f"delete the instances first ({service.host} hosts {hosting})."
            )
        if migrations_db.live_in_progress_on(session, service.host):
            raise Conflict(
                "Unable to delete compute service that has in-progress migrations. Complete "
                "the migrations or delete the instances first."
            )
        for aggregate in db_aggregates.for_host(session, service.host):
            db_aggregates.remove_host(session, aggregate, service.host)
        if service.provider_uuid:
            # In the transaction: if Placement refuses (allocations left), the row stays.
            try:
                ctx.placement.delete_resource_provider(service.provider_uuid)
            except PlacementConflict as exc:
                raise Conflict(
                    f"Unable to delete the resource provider {service.provider_uuid} of "
                    f"{service.host}: Placement still has allocations on it ({exc.detail})"
                ) from exc
        session.delete(service)
    ctx.scheduler.invalidate_hosts()
