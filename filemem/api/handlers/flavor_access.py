"""os-flavor-access: the projects of a private flavor; addTenantAccess/removeTenantAccess."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Request

from filemem.api import policy
from filemem.api.context import get_context
from filemem.api.errors import BadRequest, Conflict, NotFound
from filemem.api.handlers.flavors import FlavorIdPath, find
from filemem.api.policies import compute as policies
from filemem.db import projects as db_projects
from filemem.db.models import Flavor

MAX_TENANT = 255


def _view(flavor: Flavor, projects: list[str]) -> dict[str, Any]:
    return {"flavor_access": [{"flavor_id": flavor.flavorid, "tenant_id": p} for p in projects]}


def list_flavor_access(request: Request, flavor_id: FlavorIdPath) -> dict[str, Any]:
    """GET /flavors/{id}/os-flavor-access (admin); 404 for a public flavor, as nova."""
    with get_context(request).database.reader() as session:
        flavor = find(request, session, flavor_id)
        if flavor.is_public:
            raise NotFound("Access list not available for public flavors.")
        return _view(flavor, db_projects.flavor_projects(session, flavor))


def _tenant(action: str, value: Any) -> str:
    """nova's schema: {"tenant": a string of 1 to 255 characters}."""
    tenant = value.get("tenant") if isinstance(value, dict) else None
    if not isinstance(value, dict) or set(value) != {"tenant"}:
        raise BadRequest(f"Invalid input for field/attribute {action}: 'tenant' is required")
    if not isinstance(tenant, str) or not 1 <= len(tenant) <= MAX_TENANT:
        raise BadRequest(
            f"Invalid input for field/attribute tenant: must be a string of 1 to {MAX_TENANT} "
            "characters"
        )
    return tenant


def _add(request: Request, flavor_id: str, tenant: str) -> dict[str, Any]:
    with get_context(request).database.session() as session:
        flavor = find(request, session, flavor_id)
        if flavor.is_public:
            raise Conflict("Can not add access to a public flavor.")
        if not db_projects.add_flavor_project(session, flavor, tenant):
            raise Conflict(
                f"Flavor access already exists for flavor {flavor.flavorid} and project "
                f"{tenant} combination."
            )
        return _view(flavor, db_projects.flavor_projects(session, flavor))


def _remove(request: Request, flavor_id: str, tenant: str) -> dict[str, Any]:
    with get_context(request).database.session() as session:
        flavor = find(request, session, flavor_id)
        if not db_projects.remove_flavor_project(session, flavor, tenant):
            raise NotFound(f"Flavor access not found for {flavor.flavorid} / {tenant} combination.")
        return _view(flavor, db_projects.flavor_projects(session, flavor))


_ACTIONS = {
    "addTenantAccess": (policies.FLAVOR_ADD_TENANT, _add),
    "removeTenantAccess": (policies.FLAVOR_REMOVE_TENANT, _remove),
}


def flavor_action(
    request: Request, flavor_id: FlavorIdPath, body: Annotated[Any, Body()]
) -> dict[str, Any]:
    """POST /flavors/{id}/action: 200 with the flavor's access list after the change."""
    if not isinstance(body, dict) or len(body) != 1:
        raise BadRequest("Exactly one action is expected in the request body")
    ((name, value),) = body.items()
    entry = _ACTIONS.get(str(name))
    if entry is None:
        raise BadRequest(f"There is no such action: {name}")
    rule, handle = entry
    policy.authorize(request, rule)
    return handle(request, flavor_id, _tenant(str(name), value))
