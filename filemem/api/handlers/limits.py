"""limits: nova's absolute limits, all -1 (filemem enforces no quotas), and the usage counted."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query, Request

from filemem.api.context import get_context
from filemem.api.microversion import at_least
from filemem.db import api as db_api

TenantQuery = Annotated[str | None, Query(max_length=255)]
UNLIMITED = -1
# nova's FILTERED_LIMITS_v236: the network proxies' limits (and their usage) leave at 2.36.
NETWORK_LIMITS_REMOVED_IN = "2.36"
NETWORK_LIMITS = frozenset(
    {
        "maxSecurityGroups",
        "maxSecurityGroupRules",
        "maxTotalFloatingIps",
        "totalFloatingIpsUsed",
        "totalSecurityGroupsUsed",
    }
)


@dataclass(frozen=True)
class Usage:
    instances: int
    cores: int
    ram: int


def usage(request: Request, project_id: str) -> Usage:
    """What the project's instance rows hold (a row being deleted still holds its resources)."""
    with get_context(request).database.reader() as session:
        rows = [i for i in db_api.list_instances(session) if i.project_id == project_id]
    return Usage(len(rows), sum(i.vcpus for i in rows), sum(i.memory_mb for i in rows))


def show_limits(request: Request, tenant_id: TenantQuery = None) -> dict[str, Any]:
    """GET /limits[?tenant_id=]: the caller's project unless an admin names another; from 2.36
    without the network limits."""
    used = usage(request, tenant_id or get_context(request).project_id)
    absolute = {
        "maxImageMeta": UNLIMITED,
        "maxPersonality": UNLIMITED,
        "maxPersonalitySize": UNLIMITED,
        "maxSecurityGroupRules": UNLIMITED,
        "maxSecurityGroups": UNLIMITED,
        "maxServerGroupMembers": UNLIMITED,
        "maxServerGroups": UNLIMITED,
        "maxServerMeta": UNLIMITED,
        "maxTotalCores": UNLIMITED,
        "maxTotalFloatingIps": UNLIMITED,
        "maxTotalInstances": UNLIMITED,
        "maxTotalKeypairs": UNLIMITED,
        "maxTotalRAMSize": UNLIMITED,
        "totalCoresUsed": used.cores,
        "totalFloatingIpsUsed": 0,
        "totalInstancesUsed": used.instances,
        "totalRAMUsed": used.ram,
        "totalSecurityGroupsUsed": 0,
        "totalServerGroupsUsed": 0,
    }
    if at_least(request, NETWORK_LIMITS_REMOVED_IN):
        absolute = {k: v for k, v in absolute.items() if k not in NETWORK_LIMITS}
    return {"limits": {"rate": [], "absolute": absolute}}
