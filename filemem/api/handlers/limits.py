"""limits: nova's absolute limits (the project's instances, cores, ram and metadata_items quotas;
others -1) and
the project's usage counted from its instances."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Request

from filemem.api import policy, quota
from filemem.api.context import get_context
from filemem.api.identity import get_caller
from filemem.api.microversion import at_least
from filemem.api.policies import compute as policies
from filemem.db import projects as db_projects

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


def show_limits(request: Request, tenant_id: TenantQuery = None) -> dict[str, Any]:
    """GET /limits[?tenant_id=]: the caller's project unless an admin names another; from 2.36
    without the network limits."""
    project_id = get_caller(request).project_id
    if tenant_id is not None:
        project_id = tenant_id
        policy.authorize(request, policies.LIMITS_OTHER_PROJECT, {"project_id": tenant_id})
    with get_context(request).database.reader() as session:
        used = db_projects.usage(session, project_id)
        limits = quota.project_limits(request, session, project_id)
    absolute = {
        "maxImageMeta": UNLIMITED,
        "maxPersonality": UNLIMITED,
        "maxPersonalitySize": UNLIMITED,
        "maxSecurityGroupRules": UNLIMITED,
        "maxSecurityGroups": UNLIMITED,
        "maxServerGroupMembers": UNLIMITED,
        "maxServerGroups": UNLIMITED,
        "maxServerMeta": limits.metadata_items,
        "maxTotalCores": limits.cores,
        "maxTotalFloatingIps": UNLIMITED,
        "maxTotalInstances": limits.instances,
        "maxTotalKeypairs": UNLIMITED,
        "maxTotalRAMSize": limits.ram,
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
