"""os-simple-tenant-usage: hours and resource-hours of each project's instances over a period.

Figures come from the instances table alone: a deleted instance's row is gone from filemem's
database, so its past usage is not counted (nova keeps soft-deleted rows and counts them).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import Path, Query, Request

from filemem.api.context import get_context
from filemem.api.errors import BadRequest
from filemem.db import api as db_api
from filemem.db.models import Instance, utcnow

TimeQuery = Annotated[str | None, Query(max_length=64)]
DetailedQuery = Annotated[str | None, Query(max_length=8)]
TenantIdPath = Annotated[str, Path(min_length=1, max_length=255)]
# nova tests for "1" only; openstacksdk sends "True", so both count (else the CLI shows no servers).
DETAILED = frozenset({"1", "true", "True"})
# The formats nova's _parse_datetime accepts.
_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f")


def _parse(value: str | None, now: dt.datetime) -> dt.datetime:
    if not value:
        return now
    for fmt in _FORMATS:
        try:
            return dt.datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise BadRequest("Datetime is in invalid format")


def _period(start: str | None, end: str | None) -> tuple[dt.datetime, dt.datetime, dt.datetime]:
    now = utcnow()
    begin, stop = _parse(start, now), _parse(end, now)
    if begin > stop:
        raise BadRequest("Invalid start time. The start time cannot occur after the end time.")
    return begin, stop, now


def _hours(instance: Instance, begin: dt.datetime, stop: dt.datetime, now: dt.datetime) -> float:
    """Running time inside the period; it ends now, not at a future end as nova's does."""
    if instance.launched_at is None:
        return 0.0
    seconds = (min(stop, now) - max(instance.launched_at, begin)).total_seconds()
    return max(seconds, 0.0) / 3600.0


def _server_usage(
    instance: Instance, begin: dt.datetime, stop: dt.datetime, now: dt.datetime
) -> dict[str, Any]:
    started = instance.launched_at
    return {
        "instance_id": instance.uuid,
        "name": instance.display_name,
        "tenant_id": instance.project_id,
        "hours": _hours(instance, begin, stop, now),
        "memory_mb": instance.memory_mb,
        "local_gb": instance.root_gb,
        "vcpus": instance.vcpus,
        "flavor": instance.flavor_name,
        "started_at": started.isoformat() if started else None,
        "ended_at": None,
        "state": instance.vm_state,
        "uptime": int((now - started).total_seconds()) if started else 0,
    }


def _tenant_usage(
    tenant_id: str, servers: list[dict[str, Any]], begin: dt.datetime, stop: dt.datetime
) -> dict[str, Any]:
    return {
        "tenant_id": tenant_id,
        "total_hours": sum(s["hours"] for s in servers),
        "total_memory_mb_usage": sum(s["memory_mb"] * s["hours"] for s in servers),
        "total_vcpus_usage": sum(s["vcpus"] * s["hours"] for s in servers),
        "total_local_gb_usage": sum(s["local_gb"] * s["hours"] for s in servers),
        "start": begin.isoformat(),
        "stop": stop.isoformat(),
    }


def _by_tenant(
    request: Request, begin: dt.datetime, stop: dt.datetime, now: dt.datetime
) -> dict[str, list[dict[str, Any]]]:
    """Instances created before the period's end (nova also counts never-launched ones: 0 h)."""
    with get_context(request).database.reader() as session:
        instances = db_api.list_instances(session)
    grouped: dict[str, list[dict[str, Any]]] = {}
    for instance in sorted(instances, key=lambda i: i.created_at):
        if instance.created_at <= stop:
            usage = _server_usage(instance, begin, stop, now)
            grouped.setdefault(instance.project_id, []).append(usage)
    return grouped


def list_tenant_usage(
    request: Request,
    start: TimeQuery = None,
    end: TimeQuery = None,
    detailed: DetailedQuery = None,
) -> dict[str, Any]:
    """GET /os-simple-tenant-usage[?start=&end=&detailed=1]: one entry per project."""
    begin, stop, now = _period(start, end)
    usages = []
    for tenant_id, servers in sorted(_by_tenant(request, begin, stop, now).items()):
        usage = _tenant_usage(tenant_id, servers, begin, stop)
        if detailed in DETAILED:
            usage["server_usages"] = servers
        usages.append(usage)
    return {"tenant_usages": usages}


def show_tenant_usage(
    request: Request, tenant_id: TenantIdPath, start: TimeQuery = None, end: TimeQuery = None
) -> dict[str, Any]:
    """GET /os-simple-tenant-usage/{tenant_id}: {} when the project has no instances, as nova."""
    begin, stop, now = _period(start, end)
    servers = _by_tenant(request, begin, stop, now).get(tenant_id)
    if not servers:
        return {"tenant_usage": {}}
    return {
        "tenant_usage": {**_tenant_usage(tenant_id, servers, begin, stop), "server_usages": servers}
    }
