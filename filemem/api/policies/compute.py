"""nova's rules for the compute API beyond servers: flavors and their access, keypairs,
hypervisors, services, aggregates, zones, limits, quotas, usage and migrations."""

from __future__ import annotations

from oslo_policy import policy

from filemem.api.policies.base import (
    ADMIN,
    PROJECT_MANAGER_OR_ADMIN,
    PROJECT_READER_OR_ADMIN,
    RULE_ANY,
    rule,
)

FLAVOR_ACCESS = "os_compute_api:os-flavor-access"
FLAVOR_ADD_TENANT = "os_compute_api:os-flavor-access:add_tenant_access"
FLAVOR_REMOVE_TENANT = "os_compute_api:os-flavor-access:remove_tenant_access"
KEYPAIR = "os_compute_api:os-keypairs:%s"
KEYPAIR_OWNER = "(rule:context_is_admin) or user_id:%(user_id)s"
LIMITS = "os_compute_api:limits"
LIMITS_OTHER_PROJECT = "os_compute_api:limits:other_project"
QUOTA = "os_compute_api:os-quota-sets:%s"
AGGREGATE = "os_compute_api:os-aggregates:%s"
MIGRATIONS_INDEX = "os_compute_api:os-migrations:index"
MIGRATIONS_ALL_PROJECTS = "os_compute_api:os-migrations:index:all_projects"
MIGRATIONS_HOST = "os_compute_api:os-migrations:index:host"

F = "/flavors"
FONE = "/flavors/{flavor_id}"
SPECS = f"{FONE}/os-extra_specs"
HYP = "/os-hypervisors"
QS = "/os-quota-sets/{tenant_id}"
AGG = "/os-aggregates"
AGGONE = "/os-aggregates/{aggregate_id}"

_flavors = [
    rule("os_compute_api:os-flavor-manage:create", ADMIN, "Create a flavor", ("POST", F)),
    rule("os_compute_api:os-flavor-manage:delete", ADMIN, "Delete a flavor", ("DELETE", FONE)),
    rule(
        FLAVOR_ACCESS,
        ADMIN,
        "List flavor access information, and show the projects of a "
        "private flavor (os-flavor-access:is_public listing filter)",
        ("GET", f"{FONE}/os-flavor-access"),
    ),
    rule(
        FLAVOR_ADD_TENANT,
        ADMIN,
        "Add flavor access to a tenant",
        ("POST", f"{FONE}/action (addTenantAccess)"),
    ),
    rule(
        FLAVOR_REMOVE_TENANT,
        ADMIN,
        "Remove flavor access from a tenant",
        ("POST", f"{FONE}/action (removeTenantAccess)"),
    ),
    rule(
        "os_compute_api:os-flavor-extra-specs:index",
        PROJECT_READER_OR_ADMIN,
        "List extra specs for a flavor",
        ("GET", SPECS),
    ),
    rule(
        "os_compute_api:os-flavor-extra-specs:show",
        PROJECT_READER_OR_ADMIN,
        "Show an extra spec for a flavor",
        ("GET", f"{SPECS}/{{key}}"),
    ),
    rule(
        "os_compute_api:os-flavor-extra-specs:create",
        ADMIN,
        "Create extra specs for a flavor",
        ("POST", SPECS),
    ),
    rule(
        "os_compute_api:os-flavor-extra-specs:update",
        ADMIN,
        "Update an extra spec for a flavor",
        ("PUT", f"{SPECS}/{{key}}"),
    ),
    rule(
        "os_compute_api:os-flavor-extra-specs:delete",
        ADMIN,
        "Delete an extra spec for a flavor",
        ("DELETE", f"{SPECS}/{{key}}"),
    ),
]

_keypairs = [
    rule(KEYPAIR % "index", KEYPAIR_OWNER, "List all keypairs", ("GET", "/os-keypairs")),
    rule(KEYPAIR % "create", KEYPAIR_OWNER, "Create a keypair", ("POST", "/os-keypairs")),
    rule(
        KEYPAIR % "show",
        KEYPAIR_OWNER,
        "Show details of a keypair",
        ("GET", "/os-keypairs/{keypair_name}"),
    ),
    rule(
        KEYPAIR % "delete",
        KEYPAIR_OWNER,
        "Delete a keypair",
        ("DELETE", "/os-keypairs/{keypair_name}"),
    ),
]

_admin = [
    rule("os_compute_api:os-hypervisors:list", ADMIN, "List all hypervisors", ("GET", HYP)),
    rule(
        "os_compute_api:os-hypervisors:list-detail",
        ADMIN,
        "List all hypervisors with details",
        ("GET", f"{HYP}/detail"),
    ),
    rule(
        "os_compute_api:os-hypervisors:statistics",
        ADMIN,
        "Show summary statistics for all hypervisors",
        ("GET", f"{HYP}/statistics"),
    ),
    rule(
        "os_compute_api:os-hypervisors:show",
        ADMIN,
        "Show details for a hypervisor",
        ("GET", f"{HYP}/{{hypervisor_id}}"),
    ),
    rule(
        "os_compute_api:os-hypervisors:uptime",
        ADMIN,
        "Show the uptime of a hypervisor",
        ("GET", f"{HYP}/{{hypervisor_id}}/uptime"),
    ),
    rule(
        "os_compute_api:os-hypervisors:search",
        ADMIN,
        "Search hypervisor by hypervisor_hostname pattern",
        ("GET", f"{HYP}/{{hypervisor_hostname_pattern}}/search"),
    ),
    rule(
        "os_compute_api:os-services:list",
        ADMIN,
        "List all running Compute services",
        ("GET", "/os-services"),
    ),
    rule(
        "os_compute_api:os-services:update",
        ADMIN,
        "Update a Compute service (enable, disable, disable-log-reason, force-down)",
        ("PUT", "/os-services/{action}"),
    ),
    rule(
        "os_compute_api:os-services:delete",
        ADMIN,
        "Delete a Compute service",
        ("DELETE", "/os-services/{service_id}"),
    ),
    rule(AGGREGATE % "index", ADMIN, "List all aggregates", ("GET", AGG)),
    rule(AGGREGATE % "create", ADMIN, "Create an aggregate", ("POST", AGG)),
    rule(AGGREGATE % "show", ADMIN, "Show details for an aggregate", ("GET", AGGONE)),
    rule(AGGREGATE % "update", ADMIN, "Update name and/or availability zone", ("PUT", AGGONE)),
    rule(AGGREGATE % "delete", ADMIN, "Delete an aggregate", ("DELETE", AGGONE)),
    rule(
        AGGREGATE % "set_metadata",
        ADMIN,
        "Create or replace metadata for an aggregate",
        ("POST", f"{AGGONE}/action (set_metadata)"),
    ),
    rule(
        AGGREGATE % "add_host",
        ADMIN,
        "Add a host to an aggregate",
        ("POST", f"{AGGONE}/action (add_host)"),
    ),
    rule(
        AGGREGATE % "remove_host",
        ADMIN,
        "Remove a host from an aggregate",
        ("POST", f"{AGGONE}/action (remove_host)"),
    ),
    rule(
        "os_compute_api:os-availability-zone:list",
        RULE_ANY,
        "List availability zone information without host information",
        ("GET", "/os-availability-zone"),
    ),
    rule(
        "os_compute_api:os-availability-zone:detail",
        ADMIN,
        "List detailed availability zone information with host information",
        ("GET", "/os-availability-zone/detail"),
    ),
    rule(MIGRATIONS_INDEX, PROJECT_MANAGER_OR_ADMIN, "List migrations", ("GET", "/os-migrations")),
    rule(
        MIGRATIONS_ALL_PROJECTS, ADMIN, "List migrations of all projects", ("GET", "/os-migrations")
    ),
    rule(
        MIGRATIONS_HOST, ADMIN, "List migrations with host information", ("GET", "/os-migrations")
    ),
]

_usage = [
    rule(
        LIMITS,
        RULE_ANY,
        "Show rate and absolute limits for the current user project",
        ("GET", "/limits"),
    ),
    rule(
        LIMITS_OTHER_PROJECT,
        ADMIN,
        "Show rate and absolute limits of another project",
        ("GET", "/limits"),
    ),
    rule(QUOTA % "update", ADMIN, "Update the quotas", ("PUT", QS)),
    rule(QUOTA % "defaults", RULE_ANY, "List default quotas", ("GET", f"{QS}/defaults")),
    rule(QUOTA % "show", PROJECT_READER_OR_ADMIN, "Show a quota", ("GET", QS)),
    rule(QUOTA % "delete", ADMIN, "Revert quotas to defaults", ("DELETE", QS)),
    rule(
        QUOTA % "detail",
        PROJECT_READER_OR_ADMIN,
        "Show the detail of quota",
        ("GET", f"{QS}/detail"),
    ),
    rule(
        "os_compute_api:os-simple-tenant-usage:show",
        PROJECT_READER_OR_ADMIN,
        "Show usage statistics for a specific tenant",
        ("GET", "/os-simple-tenant-usage/{tenant_id}"),
    ),
    rule(
        "os_compute_api:os-simple-tenant-usage:list",
        ADMIN,
        "List per tenant usage statistics for all tenants",
        ("GET", "/os-simple-tenant-usage"),
    ),
]


def list_rules() -> list[policy.RuleDefault]:
    return [*_flavors, *_keypairs, *_admin, *_usage]
