"""os-quota-sets: per-project instances, cores, ram and metadata_items quotas (the others
show -1).

From 2.36 the network proxies' quotas (fixed_ips, floating_ips, security_groups,
security_group_rules) leave every answer, as nova's FILTERED_QUOTAS_v236.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Path, Query, Request, Response

from filemem.api import quota
from filemem.api.context import get_context
from filemem.api.errors import BadRequest
from filemem.api.microversion import at_least
from filemem.db import projects as db_projects

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
# The quotas filemem enforces (the first three counted from the instance rows, as nova does);
# the others show -1.
ENFORCED = ("instances", "cores", "ram", "metadata_items")
MAX_LIMIT = 0x7FFFFFFF


def keys(request: Request) -> tuple[str, ...]:
    """The quotas nova shows at the request's version."""
    if at_least(request, NETWORK_QUOTAS_REMOVED_IN):
        return tuple(key for key in QUOTA_KEYS if key not in NETWORK_QUOTAS)
    return QUOTA_KEYS


def _limits(request: Request, project_id: str | None) -> dict[str, int]:
    """Every quota at this version: the enforced ones from [quota] and the project's own."""
    if project_id is None:
        enforced = quota.default_limits(request)
    else:
        with get_context(request).database.reader() as session:
            enforced = quota.project_limits(request, session, project_id)
    return {key: enforced.get(key) if key in ENFORCED else -1 for key in keys(request)}


def show_quota_set(
    request: Request, project_id: ProjectIdPath, user_id: UserIdQuery = None
) -> dict[str, Any]:
    """GET /os-quota-sets/{project_id}[?user_id=]: filemem keeps no per-user quotas, so a
    user's quota set is the project's."""
    return {"quota_set": {"id": project_id, **_limits(request, project_id)}}


def show_quota_set_detail(
    request: Request, project_id: ProjectIdPath, user_id: UserIdQuery = None
) -> dict[str, Any]:
    """GET /os-quota-sets/{project_id}/detail: limit, in_use and reserved of each quota."""
    with get_context(request).database.reader() as session:
        in_use = db_projects.usage(session, project_id).as_dict()
    detail = {
        key: {"limit": limit, "in_use": in_use.get(key, 0), "reserved": 0}
        for key, limit in _limits(request, project_id).items()
    }
    return {"quota_set": {"id": project_id, **detail}}


def show_defaults(request: Request, project_id: ProjectIdPath) -> dict[str, Any]:
    """GET /os-quota-sets/{project_id}/defaults: the [quota] options."""
    return {"quota_set": {"id": project_id, **_limits(request, None)}}


def _limit(key: str, value: Any) -> int:
    """nova's quota value: an integer (or its string) from -1 (unlimited) to 2**31-1."""
    if isinstance(value, bool):
        value = None
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = None
    if number is None or not -1 <= number <= MAX_LIMIT:
        raise BadRequest(
            f"Invalid input for field/attribute {key}. Value: {value}. "
            f"must be an integer from -1 to {MAX_LIMIT}"
        )
    return number


def _requested(body: Any) -> tuple[dict[str, int], bool]:
    """The limits a PUT sets and its force flag; 400 for anything else."""
    spec = body.get("quota_set") if isinstance(body, dict) and len(body) == 1 else None
    if not isinstance(spec, dict):
        raise BadRequest("Invalid input for field/attribute quota_set: a JSON object is required")
    force = bool(spec.get("force", False))
    unknown = sorted(set(spec) - set(QUOTA_KEYS) - {"force"})
    if unknown:
        raise BadRequest(
            f"Additional properties are not allowed ({', '.join(unknown)} were unexpected)"
        )
    unenforced = sorted(set(spec) - set(ENFORCED) - {"force"})
    if unenforced:
        raise BadRequest(
            f"filemem enforces only the instances, cores, ram and metadata_items quotas: "
            f"{', '.join(unenforced)} cannot be set"
        )
    return {key: _limit(key, spec[key]) for key in ENFORCED if key in spec}, force


def update_quota_set(
    request: Request,
    project_id: ProjectIdPath,
    body: Annotated[Any, Body()],
    user_id: UserIdQuery = None,
) -> dict[str, Any]:
    """PUT /os-quota-sets/{project_id} (admin): set the project's limits; without force, a
    limit under what the project already uses is refused (nova's 400)."""
    if user_id is not None:
        raise BadRequest("filemem keeps no per-user quotas: leave out user_id")
    wanted, force = _requested(body)
    with get_context(request).database.session() as session:
        in_use = db_projects.usage(session, project_id).as_dict()
        for key, limit in wanted.items():
            used = in_use.get(key, 0)
            if not force and limit != -1 and limit < used:
                raise BadRequest(
                    f"Quota limit {limit} for {key} must be greater than or equal to already "
                    f"used and reserved {used}."
                )
        db_projects.set_quotas(session, project_id, wanted)
    return {"quota_set": _limits(request, project_id)}


def delete_quota_set(request: Request, project_id: ProjectIdPath) -> Response:
    """DELETE /os-quota-sets/{project_id} (admin): 202; the project's limits revert to
    the [quota] defaults."""
    with get_context(request).database.session() as session:
        db_projects.delete_quotas(session, project_id)
    return Response(status_code=202)
