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
    glance,
    hypervisors,
    images,
    instance_actions,
    keypairs,
    limits,
    migration_events,
    migrations,
    placement_proxy,
    quota_sets,
    server_actions,
    server_create,
    server_metadata,
    server_tags,
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
G = glance.PREFIX


def _server_subresources() -> tuple[Route, ...]:
    """Metadata, tags (2.26) and os-instance-actions of one server."""
    server = f"{V}/servers/{{server_id}}"
    meta, tags = f"{server}/metadata", f"{server}/tags"
    return (
        Route("GET", meta, server_metadata.list_metadata),
        Route("POST", meta, server_metadata.create_metadata),
        Route("PUT", meta, server_metadata.replace_metadata),
        Route("GET", f"{meta}/{{key}}", server_metadata.show_metadata_item),
        Route("PUT", f"{meta}/{{key}}", server_metadata.update_metadata_item),
        Route("DELETE", f"{meta}/{{key}}", server_metadata.delete_metadata_item, status=204),
        Route("GET", tags, server_tags.list_tags),
        Route("PUT", tags, server_tags.replace_tags),
        Route("DELETE", tags, server_tags.delete_tags, status=204),
        Route("GET", f"{tags}/{{tag}}", server_tags.show_tag, status=204),
        Route("PUT", f"{tags}/{{tag}}", server_tags.add_tag, status=201),
        Route("DELETE", f"{tags}/{{tag}}", server_tags.delete_tag, status=204),
        Route("GET", f"{server}/os-instance-actions", instance_actions.list_instance_actions),
        Route(
            "GET",
            f"{server}/os-instance-actions/{{request_id}}",
            instance_actions.show_instance_action,
        ),
    )


def _aggregate_routes() -> tuple[Route, ...]:
    """os-aggregates (nova answers 200 to create, delete and actions)."""
    one = f"{V}/os-aggregates/{{aggregate_id}}"
    return (
        Route("GET", f"{V}/os-aggregates", aggregates.list_aggregates),
        Route("POST", f"{V}/os-aggregates", aggregates.create_aggregate),
        Route("GET", one, aggregates.show_aggregate),
        Route("PUT", one, aggregates.update_aggregate),
        Route("DELETE", one, aggregates.delete_aggregate),
        Route("POST", f"{one}/action", aggregates.aggregate_action),
    )


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
    Route("POST", f"{V}/servers", server_create.create_server, status=202),
    Route("GET", f"{V}/servers/detail", servers.list_servers_detail),
    Route("GET", f"{V}/servers/{{server_id}}", servers.show_server),
    Route("PUT", f"{V}/servers/{{server_id}}", servers.update_server),
    Route("DELETE", f"{V}/servers/{{server_id}}", servers.delete_server, status=204),
    Route("POST", f"{V}/servers/{{server_id}}/action", server_actions.server_action, status=202),
    *_server_subresources(),
    Route("GET", f"{V}/os-keypairs", keypairs.list_keypairs),
    Route("POST", f"{V}/os-keypairs", keypairs.create_keypair, status=201),
    Route("GET", f"{V}/os-keypairs/{{keypair_name}}", keypairs.show_keypair),
    Route("DELETE", f"{V}/os-keypairs/{{keypair_name}}", keypairs.delete_keypair, status=204),
    Route("GET", f"{V}/servers/{{server_id}}/migrations", migrations.list_server_migrations),
    Route(
        "GET",
        f"{V}/servers/{{server_id}}/migrations/{{migration_id}}",
        migrations.show_server_migration,
    ),
    Route(
        "POST",
        f"{V}/servers/{{server_id}}/migrations/{{migration_id}}/action",
        migrations.force_complete,
        status=202,
    ),
    Route(
        "DELETE",
        f"{V}/servers/{{server_id}}/migrations/{{migration_id}}",
        migrations.abort,
        status=202,
    ),
    Route("GET", f"{V}/os-migrations", migrations.list_migrations),
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
    Route("GET", f"{V}/images/detail", images.list_images_detail, tag="images"),
    Route("GET", f"{V}/images/{{image_id}}", images.show_image, tag="images"),
    Route("GET", G, glance.image_versions_root, public=True, tag="image"),
    Route("GET", f"{G}/", glance.image_versions_root, public=True, tag="image", in_schema=False),
    Route("GET", f"{G}/versions", glance.image_versions, public=True, tag="image"),
    Route("GET", f"{G}/v2/images", glance.list_images, tag="image"),
    Route("POST", f"{G}/v2/images", glance.create_image, status=201, tag="image"),
    Route("GET", f"{G}/v2/images/{{image_id}}", glance.show_image, tag="image"),
    Route("GET", f"{V}/os-hypervisors", hypervisors.list_hypervisors),
    Route("GET", f"{V}/os-hypervisors/detail", hypervisors.list_hypervisors_detail),
    Route("GET", f"{V}/os-hypervisors/statistics", hypervisors.hypervisor_statistics),
    Route("GET", f"{V}/os-hypervisors/{{pattern}}/search", hypervisors.search_hypervisors),
    Route("GET", f"{V}/os-hypervisors/{{hypervisor_id}}", hypervisors.show_hypervisor),
    Route("GET", f"{V}/os-hypervisors/{{hypervisor_id}}/uptime", hypervisors.hypervisor_uptime),
    *_aggregate_routes(),
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
    Route("PUT", f"{V}/os-services/force-down", services.force_down),
    Route("DELETE", f"{V}/os-services/{{service_id}}", services.delete_service, status=204),
    Route("PUT", f"{F}/services/{{host}}", agent.register_service, tag="agent"),
    Route("GET", f"{F}/hosts/{{host}}/instances", agent.watch_instances, tag="agent"),
    Route(
        "POST",
        f"{F}/migrations/{{migration_uuid}}/events",
        migration_events.record_migration_event,
        tag="agent",
    ),
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
