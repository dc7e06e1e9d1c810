"""The one route table: every URL of filemem-api, its handler, status and whether it is public."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Security

from filemem.api.auth import token_scheme
from filemem.api.handlers import (
    agent,
    aggregates,
    availability_zones,
    extra_specs,
    flavors,
    hypervisors,
    images,
    limits,
    placement_proxy,
    quota_sets,
    server_actions,
    servers,
    services,
    tenant_usage,
    versions,
)


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    endpoint: Callable[..., Any]
    status: int = 200
    public: bool = False
    tag: str = "compute"
    in_schema: bool = True


V = "/v2.1"
F = "/filemem/v1"

# Literal segments (detail, search) come before the {id} routes they would otherwise match.
ROUTES: tuple[Route, ...] = (
    Route("GET", "/", versions.list_versions, public=True, tag="versions"),
    Route("GET", V, versions.show_version, public=True, tag="versions"),
    Route("GET", f"{V}/", versions.show_version, public=True, tag="versions", in_schema=False),
    Route("GET", "/identity", versions.identity_versions, public=True, tag="identity"),
    Route("GET", "/identity/v3", versions.identity_v3, public=True, tag="identity"),
    Route("GET", "/identity/v3/projects", versions.list_projects, tag="identity"),
    Route("GET", "/identity/v3/projects/{project_id}", versions.show_project, tag="identity"),
    Route(
        "GET", "/identity/v3/", versions.identity_v3, public=True, tag="identity", in_schema=False
    ),
    Route("GET", f"{V}/servers", servers.list_servers),
    Route("POST", f"{V}/servers", servers.create_server, status=202),
    Route("GET", f"{V}/servers/detail", servers.list_servers_detail),
    Route("GET", f"{V}/servers/{{server_id}}", servers.show_server),
    Route("DELETE", f"{V}/servers/{{server_id}}", servers.delete_server, status=204),
    Route("POST", f"{V}/servers/{{server_id}}/action", server_actions.server_action, status=202),
    Route("GET", f"{V}/flavors", flavors.list_flavors),
    Route("POST", f"{V}/flavors", flavors.create_flavor),
    Route("GET", f"{V}/flavors/detail", flavors.list_flavors_detail),
    Route("GET", f"{V}/flavors/{{flavor_id}}", flavors.show_flavor),
    Route("DELETE", f"{V}/flavors/{{flavor_id}}", flavors.delete_flavor, status=202),
    Route("GET", f"{V}/flavors/{{flavor_id}}/os-extra_specs", extra_specs.list_extra_specs),
    Route("POST", f"{V}/flavors/{{flavor_id}}/os-extra_specs", extra_specs.create_extra_specs),
    Route("GET", f"{V}/flavors/{{flavor_id}}/os-extra_specs/{{key}}", extra_specs.show_extra_spec),
    Route(
        "PUT", f"{V}/flavors/{{flavor_id}}/os-extra_specs/{{key}}", extra_specs.update_extra_spec
    ),
    Route(
        "DELETE", f"{V}/flavors/{{flavor_id}}/os-extra_specs/{{key}}", extra_specs.delete_extra_spec
    ),
    Route("GET", f"{V}/images", images.list_images, tag="images"),
    Route("POST", f"{V}/images", images.create_image, status=201, tag="images"),
    Route("GET", f"{V}/images/detail", images.list_images_detail, tag="images"),
    Route("GET", f"{V}/images/{{image_id}}", images.show_image, tag="images"),
    Route("GET", f"{V}/os-hypervisors", hypervisors.list_hypervisors),
    Route("GET", f"{V}/os-hypervisors/detail", hypervisors.list_hypervisors_detail),
    Route("GET", f"{V}/os-hypervisors/statistics", hypervisors.hypervisor_statistics),
    Route("GET", f"{V}/os-hypervisors/{{pattern}}/search", hypervisors.search_hypervisors),
    Route("GET", f"{V}/os-hypervisors/{{hypervisor_id}}", hypervisors.show_hypervisor),
    Route("GET", f"{V}/os-hypervisors/{{hypervisor_id}}/uptime", hypervisors.hypervisor_uptime),
    Route("GET", f"{V}/os-aggregates", aggregates.list_aggregates),
    Route("GET", f"{V}/os-availability-zone", availability_zones.list_zones),
    Route("GET", f"{V}/os-availability-zone/detail", availability_zones.list_zones_detail),
    Route("GET", f"{V}/limits", limits.show_limits),
    Route("GET", f"{V}/os-quota-sets/{{project_id}}", quota_sets.show_quota_set),
    Route("PUT", f"{V}/os-quota-sets/{{project_id}}", quota_sets.update_quota_set),
    Route("DELETE", f"{V}/os-quota-sets/{{project_id}}", quota_sets.delete_quota_set),
    Route("GET", f"{V}/os-quota-sets/{{project_id}}/defaults", quota_sets.show_defaults),
    Route("GET", f"{V}/os-quota-sets/{{project_id}}/detail", quota_sets.show_quota_set_detail),
    Route("GET", f"{V}/os-simple-tenant-usage", tenant_usage.list_tenant_usage),
    Route("GET", f"{V}/os-simple-tenant-usage/{{tenant_id}}", tenant_usage.show_tenant_usage),
    Route("GET", f"{V}/os-services", services.list_services),
    Route("PUT", f"{V}/os-services/enable", services.enable_service),
    Route("PUT", f"{V}/os-services/disable", services.disable_service),
    Route("PUT", f"{V}/os-services/disable-log-reason", services.disable_log_reason),
    Route("PUT", f"{F}/services/{{host}}", agent.register_service, tag="agent"),
    Route("GET", f"{F}/hosts/{{host}}/instances", agent.watch_instances, tag="agent"),
    Route("PUT", f"{F}/hosts/{{host}}/memory-usage", agent.report_memory_usage, tag="agent"),
    Route("PATCH", f"{F}/instances/{{server_id}}", agent.report_instance, tag="agent"),
    Route(
        "POST", f"{F}/instances/{{server_id}}/gone", agent.instance_gone, status=204, tag="agent"
    ),
    Route(
        "PUT",
        f"{F}/instances/{{server_id}}/console",
        agent.report_console,
        status=204,
        tag="agent",
    ),
    Route(
        "POST", f"{F}/instances/{{server_id}}/events", agent.record_event, status=204, tag="agent"
    ),
    *(
        Route(
            method,
            f"{placement_proxy.PREFIX}/{{path:path}}",
            placement_proxy.forward,
            tag="placement",
            in_schema=False,
        )
        for method in ("GET", "PUT", "POST", "DELETE")
    ),
)

OPENAPI_PATH = "/openapi.json"
PUBLIC_PATHS = frozenset({OPENAPI_PATH} | {r.path for r in ROUTES if r.public})


def build_router() -> APIRouter:
    router = APIRouter()
    for route in ROUTES:
        # Documents the token in the OpenAPI schema; TokenAuthMiddleware enforces it.
        dependencies = [] if route.public else [Security(token_scheme)]
        router.add_api_route(
            route.path,
            route.endpoint,
            methods=[route.method],
            status_code=route.status,
            tags=[route.tag],
            include_in_schema=route.in_schema,
            dependencies=dependencies,
            name=f"{route.method.lower()}:{route.path}",
        )
    return router
