"""os-services: list compute services; enable and disable a host (nova's 2.1 forms)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request

from filemem.api.context import ApiContext, get_context
from filemem.api.errors import NotFound
from filemem.api.schemas.services import ServiceDisableWithReason, ServiceToggle
from filemem.db import api as db_api
from filemem.db.models import Service, utcnow


def state(ctx: ApiContext, service: Service) -> str:
    return "up" if db_api.is_up(service, ctx.down_after) else "down"


def view(ctx: ApiContext, service: Service) -> dict[str, Any]:
    return {
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
        "forced_down": False,
    }


Filter = Annotated[str | None, Query(max_length=255)]


def list_services(request: Request, host: Filter = None, binary: Filter = None) -> dict[str, Any]:
    """GET /os-services[?host=&binary=]."""
    ctx = get_context(request)
    with ctx.database.reader() as session:
        services = db_api.list_services(session)
    services = [
        s
        for s in services
        if (host is None or s.host == host) and (binary is None or s.binary == binary)
    ]
    return {"services": [view(ctx, service) for service in services]}


def _toggle(
    request: Request, body: ServiceToggle, disabled: bool, reason: str | None
) -> dict[str, Any]:
    ctx = get_context(request)
    with ctx.database.session() as session:
        service = db_api.get_service_by_host(session, body.host)
        if service is None or service.binary != body.binary:
            raise NotFound(f"Service {body.binary} on host {body.host} could not be found.")
        service.disabled = disabled
        service.disabled_reason = reason
        service.updated_at = utcnow()
    ctx.scheduler.invalidate_hosts()
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
