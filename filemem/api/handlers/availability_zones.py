"""os-availability-zone: the one zone "nova", as nova derives zones from compute services.

A zone is available when one of its services is enabled, and listed as not available when all
of them are disabled; with no compute service there is no zone at all. nova also lists its
"internal" zone (scheduler, conductor) in detail; filemem has no such service rows.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request

from filemem.api.context import ApiContext, get_context
from filemem.api.handlers import services as service_views
from filemem.db import api as db_api
from filemem.db.models import Service

ZONE = "nova"
# nova's binary name: clients and dashboards look for "nova-compute" under a zone's hosts.
COMPUTE_BINARY = "nova-compute"


def _services(request: Request) -> list[Service]:
    with get_context(request).database.reader() as session:
        return db_api.list_services(session)


def _zone_available(services: list[Service]) -> bool | None:
    """True: some service enabled; False: all disabled; None: no service, no zone."""
    if not services:
        return None
    return any(not service.disabled for service in services)


def _host(ctx: ApiContext, service: Service) -> dict[str, Any]:
    # last_seen_at is the heartbeat, what nova keeps in a service's updated_at.
    updated = service.last_seen_at or service.updated_at
    return {
        COMPUTE_BINARY: {
            "available": service_views.is_up(ctx, service),
            "active": not service.disabled,
            "updated_at": updated.isoformat(timespec="microseconds") if updated else None,
        }
    }


def list_zones(request: Request) -> dict[str, Any]:
    """GET /os-availability-zone: filemem has no aggregates, so every host is in "nova"."""
    available = _zone_available(_services(request))
    if available is None:
        return {"availabilityZoneInfo": []}
    return {
        "availabilityZoneInfo": [
            {"zoneName": ZONE, "zoneState": {"available": available}, "hosts": None}
        ]
    }


def list_zones_detail(request: Request) -> dict[str, Any]:
    """GET /os-availability-zone/detail: the zone with its enabled compute hosts (nova leaves
    disabled services out) and whether each is up."""
    ctx = get_context(request)
    services = _services(request)
    available = _zone_available(services)
    if available is None:
        return {"availabilityZoneInfo": []}
    hosts = {s.host: _host(ctx, s) for s in services if not s.disabled} if available else None
    return {
        "availabilityZoneInfo": [
            {"zoneName": ZONE, "zoneState": {"available": available}, "hosts": hosts}
        ]
    }
