"""os-availability-zone: zones as nova derives them, from compute services and the
availability_zone metadata of the aggregates their hosts are in (hosts in none: "nova").

A zone is available when one of its services is enabled, and listed as not available when all
of them are disabled; a zone without a compute service is not listed (an aggregate's zone
with no host in it included, as nova). nova also lists its "internal" zone (scheduler,
conductor) in detail; filemem has no such service rows.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from sqlalchemy.orm import Session

from filemem.api.context import ApiContext, get_context
from filemem.api.handlers import services as service_views
from filemem.common.aggregates import DEFAULT_ZONE
from filemem.db import aggregates as db_aggregates
from filemem.db import api as db_api
from filemem.db.models import Service

# nova's binary name: clients and dashboards look for "nova-compute" under a zone's hosts.
COMPUTE_BINARY = "nova-compute"


def services_by_zone(session: Session) -> dict[str, list[Service]]:
    """zone -> its compute services, zones by name."""
    zones = db_aggregates.host_zones(session)
    found: dict[str, list[Service]] = {}
    for service in db_api.list_services(session):
        found.setdefault(zones.get(service.host, DEFAULT_ZONE), []).append(service)
    return dict(sorted(found.items()))


def available_zones(session: Session) -> set[str]:
    """The zones a server may ask for: those with an enabled compute service."""
    return {
        zone
        for zone, services in services_by_zone(session).items()
        if any(not s.disabled for s in services)
    }


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


def _zones(request: Request, detail: bool) -> dict[str, Any]:
    ctx = get_context(request)
    with ctx.database.reader() as session:
        zones = services_by_zone(session)
    info: list[dict[str, Any]] = []
    for zone, services in zones.items():
        available = any(not s.disabled for s in services)
        hosts = None
        if detail and available:
            # nova leaves disabled services out of an available zone's hosts.
            hosts = {s.host: _host(ctx, s) for s in services if not s.disabled}
        info.append({"zoneName": zone, "zoneState": {"available": available}, "hosts": hosts})
    # nova lists available zones first, then the unavailable ones.
    info.sort(key=lambda zone: not zone["zoneState"]["available"])  # stable: names stay sorted
    return {"availabilityZoneInfo": info}


def list_zones(request: Request) -> dict[str, Any]:
    """GET /os-availability-zone: each zone and whether it is available."""
    return _zones(request, detail=False)


def list_zones_detail(request: Request) -> dict[str, Any]:
    """GET /os-availability-zone/detail: the zones with their enabled compute hosts and
    whether each is up."""
    return _zones(request, detail=True)
