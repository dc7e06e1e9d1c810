"""os-quota-sets: read-only; filemem enforces no quotas, so every limit is -1 (unlimited).

From 2.36 the network proxies' quotas (fixed_ips, floating_ips, security_groups,
security_group_rules) leave every answer, as nova's FILTERED_QUOTAS_v236.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query, Request

from filemem.api.errors import BadRequest
from filemem.api.handlers import limits
from filemem.api.microversion import at_least

ProjectIdPath = Annotated[str, Path(min_length=1, max_length=255)]
UserIdQuery = Annotated[str | None, Query(max_length=255)]

# nova's 2.1 quota set keys (nova-network's "networks" quota is gone from nova altogether).
QUOTA_KEYS = (
    "cores",
    "fixed_ips",
    "floating_ips",
    "injected_file_content_bytes",
    "injected_file_path_bytes",
    "injected_files",
    "instances",
    "key_pairs",
    "metadata_items",
    "ram",
    "security_group_rules",
    "security_groups",
    "server_group_members",
    "server_groups",
)
NETWORK_QUOTAS_REMOVED_IN = "2.36"
NETWORK_QUOTAS = frozenset({"fixed_ips", "floating_ips", "security_group_rules", "security_groups"})
NOT_ENFORCED = "Quotas are not enforced by filemem: every quota is -1 (unlimited) and read-only."


def keys(request: Request) -> tuple[str, ...]:
    """The quotas nova shows at the request's version."""
    if at_least(request, NETWORK_QUOTAS_REMOVED_IN):
        return tuple(key for key in QUOTA_KEYS if key not in NETWORK_QUOTAS)
    return QUOTA_KEYS


def _unlimited(request: Request, project_id: str) -> dict[str, Any]:
    return {"id": project_id, **dict.fromkeys(keys(request), -1)}


def show_quota_set(
    request: Request, project_id: ProjectIdPath, user_id: UserIdQuery = None
) -> dict[str, Any]:
    """GET /os-quota-sets/{project_id}[?user_id=]."""
    return {"quota_set": _unlimited(request, project_id)}


def show_quota_set_detail(
    request: Request, project_id: ProjectIdPath, user_id: UserIdQuery = None
) -> dict[str, Any]:
    """GET /os-quota-sets/{project_id}/detail: limit, in_use and reserved of each quota."""
    used = limits.usage(request, project_id)
    in_use = {"instances": used.instances, "cores": used.cores, "ram": used.ram}
    detail = {
        key: {"limit": -1, "in_use": in_use.get(key, 0), "reserved": 0} for key in keys(request)
    }
    return {"quota_set": {"id": project_id, **detail}}


def show_defaults(request: Request, project_id: ProjectIdPath) -> dict[str, Any]:
    """GET /os-quota-sets/{project_id}/defaults."""
    return {"quota_set": _unlimited(request, project_id)}


def update_quota_set(request: Request, project_id: ProjectIdPath) -> dict[str, Any]:
    """PUT /os-quota-sets/{project_id}: refused, there is nothing to set."""
    raise BadRequest(NOT_ENFORCED)


def delete_quota_set(request: Request, project_id: ProjectIdPath) -> None:
    """DELETE /os-quota-sets/{project_id}: refused, there is nothing to revert."""
    raise BadRequest(NOT_ENFORCED)
