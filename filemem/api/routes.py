"""The one route table: every URL of filemem-api, its handler, status and whether it is public."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Security

from filemem.api import agent_authz, policy
from filemem.api.auth import token_scheme
from filemem.api.contract_version import check_contract
from filemem.api.handlers import (
    agent,
    aggregates,
    availability_zones,
    extra_specs,
    flavor_access,
    flavors,
    glance,
    glance_changes,
    glance_data,
    host_credentials,
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
from filemem.api.policies import compute as C
from filemem.api.policies import filemem as P
from filemem.api.policies import servers as SV
from filemem.api.route import BY_ACTION, Route
from filemem.api.routes_network import network_routes

SERVICES_UPDATE = "os_compute_api:os-services:update"


V = "/v2.1"
F = "/filemem/v1"
G = glance.PREFIX


def _agent_routes() -> tuple[Route, ...]:
    """The agent API: each route open to the admin and to the credential of its host only."""
    by_host, by_instance = agent_authz.authorize_host, agent_authz.authorize_instance
    by_event = agent_authz.authorize_instance_event  # records: also the ends of a past move
    instance = f"{F}/instances/{{server_id}}"

    def agent_route(method: str, path: str, endpoint: Any, authz: Any, status: int = 200) -> Route:
        return Route(method, path, endpoint, status, tag="agent", rule=P.AGENT, authz=authz)

    return (
        agent_route("PUT", f"{F}/services/{{host}}", agent.register_service, by_host),
        agent_route("GET", f"{F}/hosts/{{host}}/instances", agent.watch_instances, by_host),
        agent_route("PUT", f"{F}/hosts/{{host}}/memory-usage", agent.report_memory_usage, by_host),
        agent_route("PATCH", instance, agent.report_instance, by_instance),
        agent_route("POST", f"{instance}/gone", agent.instance_gone, by_instance, 204),
        agent_route("PUT", f"{instance}/console", agent.report_console, by_instance, 204),
        agent_route("POST", f"{instance}/events", agent.record_event, by_event, 204),
        agent_route(
            "POST",
            f"{F}/migrations/{{migration_uuid}}/events",
            migration_events.record_migration_event,
            agent_authz.authorize_migration,
        ),
    )


def _credential_routes() -> tuple[Route, ...]:
    """Host credentials: the admin's (a host credential never issues or lists credentials)."""
    path = f"{F}/hosts/{{host}}/credentials"

    def admin_route(method: str, path: str, endpoint: Any, status: int = 200) -> Route:
        return Route(
            method, path, endpoint, status, tag="agent", rule=P.AGENT, authz=agent_authz.admin_only
        )

    return (
        admin_route("POST", path, host_credentials.create_credential, 201),
        admin_route("GET", path, host_credentials.list_credentials),
        admin_route("DELETE", f"{path}/{{credential_id}}", host_credentials.revoke_credential, 204),
    )


def _metadata_routes() -> tuple[Route, ...]:
    """A server's metadata."""
    meta = f"{V}/servers/{{server_id}}/metadata"

    def route(method: str, path: str, endpoint: Any, action: str, status: int = 200) -> Route:
        rule = f"os_compute_api:server-metadata:{action}"
        return Route(method, path, endpoint, status, rule=rule)

    return (
        route("GET", meta, server_metadata.list_metadata, "index"),
        route("POST", meta, server_metadata.create_metadata, "create"),
        route("PUT", meta, server_metadata.replace_metadata, "update_all"),
        route("GET", f"{meta}/{{key}}", server_metadata.show_metadata_item, "show"),
        route("PUT", f"{meta}/{{key}}", server_metadata.update_metadata_item, "update"),
        route("DELETE", f"{meta}/{{key}}", server_metadata.delete_metadata_item, "delete", 204),
    )


def _tag_routes() -> tuple[Route, ...]:
    """A server's tags (2.26)."""
    tags = f"{V}/servers/{{server_id}}/tags"

    def route(method: str, path: str, endpoint: Any, action: str, status: int = 200) -> Route:
        rule = f"os_compute_api:os-server-tags:{action}"
        return Route(method, path, endpoint, status, rule=rule)

    return (
        route("GET", tags, server_tags.list_tags, "index"),
        route("PUT", tags, server_tags.replace_tags, "update_all"),
        route("DELETE", tags, server_tags.delete_tags, "delete_all", 204),
        route("GET", f"{tags}/{{tag}}", server_tags.show_tag, "show", 204),
        route("PUT", f"{tags}/{{tag}}", server_tags.add_tag, "update", 201),
        route("DELETE", f"{tags}/{{tag}}", server_tags.delete_tag, "delete", 204),
    )


def _server_subresources() -> tuple[Route, ...]:
    """Metadata, tags (2.26) and os-instance-actions of one server."""
    server = f"{V}/servers/{{server_id}}"
    return (
        *_metadata_routes(),
        *_tag_routes(),
        Route(
            "GET",
            f"{server}/os-instance-actions",
            instance_actions.list_instance_actions,
            rule="os_compute_api:os-instance-actions:list",
        ),
        Route(
            "GET",
            f"{server}/os-instance-actions/{{request_id}}",
            instance_actions.show_instance_action,
            rule="os_compute_api:os-instance-actions:show",
        ),
    )


def _aggregate_routes() -> tuple[Route, ...]:
    """os-aggregates (nova answers 200 to create, delete and actions)."""
    one = f"{V}/os-aggregates/{{aggregate_id}}"
    return (
        Route("GET", f"{V}/os-aggregates", aggregates.list_aggregates, rule=C.AGGREGATE % "index"),
        Route(
            "POST", f"{V}/os-aggregates", aggregates.create_aggregate, rule=C.AGGREGATE % "create"
        ),
        Route("GET", one, aggregates.show_aggregate, rule=C.AGGREGATE % "show"),
        Route("PUT", one, aggregates.update_aggregate, rule=C.AGGREGATE % "update"),
        Route("DELETE", one, aggregates.delete_aggregate, rule=C.AGGREGATE % "delete"),
        Route("POST", f"{one}/action", aggregates.aggregate_action, rule=BY_ACTION),
    )


def _image_routes() -> tuple[Route, ...]:  # glance's changes and data; hosts may download
    one, file = f"{G}/v2/images/{{image_id}}", f"{G}/v2/images/{{image_id}}/file"
    put, get = glance_data.upload_image_data, glance_data.download_image_data
    by_use = agent_authz.authorize_image_download  # what an instance of the host boots from
    by_snapshot = agent_authz.authorize_image_upload  # what an instance of the host snapshots
    return (
        Route("PATCH", one, glance_changes.update_image, rule=P.IMAGE_MODIFY, tag="image"),
        Route("DELETE", one, glance_changes.delete_image, 204, rule=P.IMAGE_DELETE, tag="image"),
        Route("PUT", file, put, 204, rule=P.IMAGE_UPLOAD_DATA, tag="image", authz=by_snapshot),
        Route("GET", file, get, rule=P.IMAGE_DOWNLOAD, tag="image", authz=by_use),
    )


# Literal segments (detail, search) come before the {id} routes they would otherwise match.
ROUTES: tuple[Route, ...] = (
    Route("GET", "/", versions.list_versions, public=True, tag="versions"),
    Route("GET", V, versions.show_version, public=True, tag="versions"),
    Route("GET", f"{V}/", versions.show_version, public=True, tag="versions", in_schema=False),
    Route("GET", "/identity", versions.identity_versions, public=True, tag="identity"),
    Route("GET", "/identity/v3", versions.identity_v3, public=True, tag="identity"),
    Route(
        "GET",
        "/identity/v3/projects",
        versions.list_projects,
        rule=P.IDENTITY_PROJECTS,
        tag="identity",
    ),
    Route(
        "GET",
        "/identity/v3/projects/{project_id}",
        versions.show_project,
        rule=P.IDENTITY_PROJECTS,
        tag="identity",
    ),
    Route(
        "GET", "/identity/v3/", versions.identity_v3, public=True, tag="identity", in_schema=False
    ),
    Route("GET", f"{V}/servers", servers.list_servers, rule=SV.INDEX),
    Route("POST", f"{V}/servers", server_create.create_server, rule=SV.CREATE, status=202),
    Route("GET", f"{V}/servers/detail", servers.list_servers_detail, rule=SV.DETAIL),
    Route("GET", f"{V}/servers/{{server_id}}", servers.show_server, rule=SV.SHOW),
    Route("PUT", f"{V}/servers/{{server_id}}", servers.update_server, rule=SV.UPDATE),
    Route(
        "DELETE", f"{V}/servers/{{server_id}}", servers.delete_server, rule=SV.DELETE, status=204
    ),
    Route(
        "POST",
        f"{V}/servers/{{server_id}}/action",
        server_actions.server_action,
        rule=BY_ACTION,
        status=202,
    ),
    *_server_subresources(),
    Route("GET", f"{V}/os-keypairs", keypairs.list_keypairs, rule=C.KEYPAIR % "index"),
    Route(
        "POST", f"{V}/os-keypairs", keypairs.create_keypair, rule=C.KEYPAIR % "create", status=201
    ),
    Route(
        "GET", f"{V}/os-keypairs/{{keypair_name}}", keypairs.show_keypair, rule=C.KEYPAIR % "show"
    ),
    Route(
        "DELETE",
        f"{V}/os-keypairs/{{keypair_name}}",
        keypairs.delete_keypair,
        rule=C.KEYPAIR % "delete",
        status=204,
    ),
    Route(
        "GET",
        f"{V}/servers/{{server_id}}/migrations",
        migrations.list_server_migrations,
        rule="os_compute_api:servers:migrations:index",
    ),
    Route(
        "GET",
        f"{V}/servers/{{server_id}}/migrations/{{migration_id}}",
        migrations.show_server_migration,
        rule="os_compute_api:servers:migrations:show",
    ),
    Route(
        "POST",
        f"{V}/servers/{{server_id}}/migrations/{{migration_id}}/action",
        migrations.force_complete,
        rule="os_compute_api:servers:migrations:force_complete",
        status=202,
    ),
    Route(
        "DELETE",
        f"{V}/servers/{{server_id}}/migrations/{{migration_id}}",
        migrations.abort,
        rule="os_compute_api:servers:migrations:delete",
        status=202,
    ),
    Route("GET", f"{V}/os-migrations", migrations.list_migrations, rule=C.MIGRATIONS_INDEX),
    Route("GET", f"{V}/flavors", flavors.list_flavors, rule=P.FLAVORS_INDEX),
    Route(
        "POST", f"{V}/flavors", flavors.create_flavor, rule="os_compute_api:os-flavor-manage:create"
    ),
    Route("GET", f"{V}/flavors/detail", flavors.list_flavors_detail, rule=P.FLAVORS_INDEX),
    Route("GET", f"{V}/flavors/{{flavor_id}}", flavors.show_flavor, rule=P.FLAVORS_SHOW),
    Route(
        "DELETE",
        f"{V}/flavors/{{flavor_id}}",
        flavors.delete_flavor,
        rule="os_compute_api:os-flavor-manage:delete",
        status=202,
    ),
    Route(
        "GET",
        f"{V}/flavors/{{flavor_id}}/os-flavor-access",
        flavor_access.list_flavor_access,
        rule=C.FLAVOR_ACCESS,
    ),
    Route("POST", f"{V}/flavors/{{flavor_id}}/action", flavor_access.flavor_action, rule=BY_ACTION),
    Route(
        "GET",
        f"{V}/flavors/{{flavor_id}}/os-extra_specs",
        extra_specs.list_extra_specs,
        rule="os_compute_api:os-flavor-extra-specs:index",
    ),
    Route(
        "POST",
        f"{V}/flavors/{{flavor_id}}/os-extra_specs",
        extra_specs.create_extra_specs,
        rule="os_compute_api:os-flavor-extra-specs:create",
    ),
    Route(
        "GET",
        f"{V}/flavors/{{flavor_id}}/os-extra_specs/{{key}}",
        extra_specs.show_extra_spec,
        rule="os_compute_api:os-flavor-extra-specs:show",
    ),
    Route(
        "PUT",
        f"{V}/flavors/{{flavor_id}}/os-extra_specs/{{key}}",
        extra_specs.update_extra_spec,
        rule="os_compute_api:os-flavor-extra-specs:update",
    ),
    Route(
        "DELETE",
        f"{V}/flavors/{{flavor_id}}/os-extra_specs/{{key}}",
        extra_specs.delete_extra_spec,
        rule="os_compute_api:os-flavor-extra-specs:delete",
    ),
    Route("GET", f"{V}/images", images.list_images, rule=P.IMAGES_INDEX, tag="images"),
    Route(
        "GET", f"{V}/images/detail", images.list_images_detail, rule=P.IMAGES_INDEX, tag="images"
    ),
    Route("GET", f"{V}/images/{{image_id}}", images.show_image, rule=P.IMAGES_SHOW, tag="images"),
    Route("GET", G, glance.image_versions_root, public=True, tag="image"),
    Route("GET", f"{G}/", glance.image_versions_root, public=True, tag="image", in_schema=False),
    Route("GET", f"{G}/versions", glance.image_versions, public=True, tag="image"),
    Route("GET", f"{G}/v2/images", glance.list_images, rule=P.IMAGES_INDEX, tag="image"),
    Route("POST", f"{G}/v2/images", glance.create_image, rule=P.IMAGE_ADD, status=201, tag="image"),
    Route("GET", f"{G}/v2/images/{{image_id}}", glance.show_image, rule=P.IMAGES_SHOW, tag="image"),
    *_image_routes(),
    Route(
        "GET",
        f"{V}/os-hypervisors",
        hypervisors.list_hypervisors,
        rule="os_compute_api:os-hypervisors:list",
    ),
    Route(
        "GET",
        f"{V}/os-hypervisors/detail",
        hypervisors.list_hypervisors_detail,
        rule="os_compute_api:os-hypervisors:list-detail",
    ),
    Route(
        "GET",
        f"{V}/os-hypervisors/statistics",
        hypervisors.hypervisor_statistics,
        rule="os_compute_api:os-hypervisors:statistics",
    ),
    Route(
        "GET",
        f"{V}/os-hypervisors/{{pattern}}/search",
        hypervisors.search_hypervisors,
        rule="os_compute_api:os-hypervisors:search",
    ),
    Route(
        "GET",
        f"{V}/os-hypervisors/{{hypervisor_id}}",
        hypervisors.show_hypervisor,
        rule="os_compute_api:os-hypervisors:show",
    ),
    Route(
        "GET",
        f"{V}/os-hypervisors/{{hypervisor_id}}/uptime",
        hypervisors.hypervisor_uptime,
        rule="os_compute_api:os-hypervisors:uptime",
    ),
    Route(
        "GET",
        f"{F}/hypervisors",
        hypervisors.list_filemem_hypervisors,
        rule="os_compute_api:os-hypervisors:list-detail",
    ),
    *_aggregate_routes(),
    *network_routes(),
    Route(
        "GET",
        f"{V}/os-availability-zone",
        availability_zones.list_zones,
        rule="os_compute_api:os-availability-zone:list",
    ),
    Route(
        "GET",
        f"{V}/os-availability-zone/detail",
        availability_zones.list_zones_detail,
        rule="os_compute_api:os-availability-zone:detail",
    ),
    Route("GET", f"{V}/limits", limits.show_limits, rule=C.LIMITS),
    Route(
        "GET", f"{V}/os-quota-sets/{{project_id}}", quota_sets.show_quota_set, rule=C.QUOTA % "show"
    ),
    Route(
        "PUT",
        f"{V}/os-quota-sets/{{project_id}}",
        quota_sets.update_quota_set,
        rule=C.QUOTA % "update",
    ),
    Route(
        "DELETE",
        f"{V}/os-quota-sets/{{project_id}}",
        quota_sets.delete_quota_set,
        status=202,
        rule=C.QUOTA % "delete",
    ),
    Route(
        "GET",
        f"{V}/os-quota-sets/{{project_id}}/defaults",
        quota_sets.show_defaults,
        rule=C.QUOTA % "defaults",
    ),
    Route(
        "GET",
        f"{V}/os-quota-sets/{{project_id}}/detail",
        quota_sets.show_quota_set_detail,
        rule=C.QUOTA % "detail",
    ),
    Route(
        "GET",
        f"{V}/os-simple-tenant-usage",
        tenant_usage.list_tenant_usage,
        rule="os_compute_api:os-simple-tenant-usage:list",
    ),
    Route(
        "GET",
        f"{V}/os-simple-tenant-usage/{{tenant_id}}",
        tenant_usage.show_tenant_usage,
        rule="os_compute_api:os-simple-tenant-usage:show",
    ),
    Route(
        "GET", f"{V}/os-services", services.list_services, rule="os_compute_api:os-services:list"
    ),
    Route("PUT", f"{V}/os-services/enable", services.enable_service, rule=SERVICES_UPDATE),
    Route("PUT", f"{V}/os-services/disable", services.disable_service, rule=SERVICES_UPDATE),
    Route(
        "PUT",
        f"{V}/os-services/disable-log-reason",
        services.disable_log_reason,
        rule=SERVICES_UPDATE,
    ),
    Route("PUT", f"{V}/os-services/force-down", services.force_down, rule=SERVICES_UPDATE),
    Route(
        "DELETE",
        f"{V}/os-services/{{service_id}}",
        services.delete_service,
        rule="os_compute_api:os-services:delete",
        status=204,
    ),
    *_agent_routes(),
    *_credential_routes(),
    *(
        Route(
            method,
            f"{placement_proxy.PREFIX}/{{path:path}}",
            placement_proxy.forward,
            rule=P.PLACEMENT_PROXY,
            tag="placement",
            in_schema=False,
        )
        for method in ("GET", "PUT", "POST", "DELETE")
    ),
)

OPENAPI_PATH = "/openapi.json"
PUBLIC_PATHS = frozenset({OPENAPI_PATH} | {r.path for r in ROUTES if r.public})


def build_router(*, identity: bool = True) -> APIRouter:
    """Every route; without `identity` the stand-in identity v3 documents are left out (behind
    Keystone, clients use the real one from their auth_url and its catalog)."""
    router = APIRouter()
    for route in ROUTES:
        if not identity and route.tag == "identity":
            continue
        # Documents the token in the OpenAPI schema; TokenAuthMiddleware enforces it.
        dependencies: list[Any] = [] if route.public else [Security(token_scheme)]
        if route.rule is not None and route.rule != BY_ACTION:
            # Host credentials pass the guard of routes whose authz (agent_authz) checks them.
            agents = route.tag == "agent" or route.authz is not None
            guard = policy.route_guard(route.rule, host_credentials=agents)
            dependencies.append(Depends(guard))
        if not route.public:
            dependencies.append(Depends(route.authz or agent_authz.deny_host_credentials))
        if route.tag == "agent":
            dependencies.append(Depends(check_contract))
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
