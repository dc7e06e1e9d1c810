"""os-availability-zone: the one zone "nova" and, in detail, the compute hosts under it."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from filemem.api.context import ApiContext, get_context
from filemem.db import api as db_api
from filemem.db.models import Service

ZONE = "nova"
# nova's binary name: clients and dashboards look for "nova-compute" under a zone's hosts.
COMPUTE_BINARY = "nova-compute"


def _host(ctx: ApiContext, service: Service) -> dict[str, Any]:
    # last_seen_at is the heartbeat, what nova keeps in a service's updated_at.
    updated = service.last_seen_at or service.updated_at
    return {
        COMPUTE_BINARY: {
            "available": db_api.is_up(service, ctx.down_after),
            "active": not service.disabled,
            "updated_at": updated.isoformat(timespec="microseconds") if updated else None,
        }
    }


def list_zones(request: Request) -> dict[str, Any]:
    """GET /os-availability-zone: filemem has no aggregates, so every host is in "nova"."""
    return {
        "availabilityZoneInfo": [
            {"zoneName": ZONE, "zoneState": {"available": True}, "hosts": None}
        ]
    }


def list_zones_detail(request: Request) -> dict[str, Any]:
    """GET /os-availability-zone/detail: the zone with each compute service's host."""
    ctx = get_context(request)
    with ctx.database.reader() as session:
        services = db_api.list_services(session)
    hosts = {service.host: _host(ctx, service) for service in services}
    return {
        "availabilityZoneInfo": [
            {"zoneName": ZONE, "zoneState": {"available": True}, "hosts": hosts}
        ]
    }
