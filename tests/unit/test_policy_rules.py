"""Every policy default, as nova has it, for an admin, a member and a reader of the target
project, a project manager and a member of another project; and every route guarded by it."""

from __future__ import annotations

import re
import uuid as uuidlib

import pytest
from oslo_policy import policy

from filemem.api.identity import ADMIN, Caller
from filemem.api.policies import list_rules
from filemem.api.policy import credentials, make_enforcer
from filemem.api.route import BY_ACTION, Route
from filemem.api.routes import ROUTES
from tests.unit import tenants_app
from tests.unit.tenants_app import CALLERS, PROJECT_A, Tenants

tenants_module = tenants_app.tenants_module

WHO = ("admin", "member_a", "manager_a", "reader_a", "member_b")
ADMIN_ONLY = {"admin"}
MANAGER = {"admin", "manager_a"}
MEMBER = {"admin", "member_a", "manager_a"}
READER = {"admin", "member_a", "manager_a", "reader_a"}
ANYONE = set(WHO)
OWNER_USER = {"admin", "member_a"}  # os-keypairs: an admin, or the key pairs' user (user-a)

# Written out from nova/policies/*.py (new defaults), not derived from filemem's code.
EXPECTED: dict[str, set[str]] = {
    "os_compute_api:servers:index": READER,
    "os_compute_api:servers:detail": READER,
    "os_compute_api:servers:index:get_all_tenants": ADMIN_ONLY,
    "os_compute_api:servers:detail:get_all_tenants": ADMIN_ONLY,
    "os_compute_api:servers:allow_all_filters": ADMIN_ONLY,
    "os_compute_api:servers:show": READER,
    "os_compute_api:servers:show:host_status": ADMIN_ONLY,
    "os_compute_api:os-extended-server-attributes": ADMIN_ONLY,
    "os_compute_api:servers:create": MEMBER,
    "os_compute_api:servers:create:forced_host": ADMIN_ONLY,
    "os_compute_api:servers:delete": MEMBER,
    "os_compute_api:servers:update": MEMBER,
    "os_compute_api:servers:start": MEMBER,
    "os_compute_api:servers:stop": MEMBER,
    "os_compute_api:servers:reboot": MEMBER,
    "os_compute_api:servers:rebuild": MEMBER,
    "os_compute_api:servers:resize": MEMBER,
    "os_compute_api:servers:confirm_resize": MEMBER,
    "os_compute_api:servers:revert_resize": MEMBER,
    "os_compute_api:servers:trigger_crash_dump": MEMBER,
    "os_compute_api:servers:create_image": MEMBER,
    "os_compute_api:os-create-backup": MEMBER,
    "os_compute_api:os-pause-server:pause": MEMBER,
    "os_compute_api:os-pause-server:unpause": MEMBER,
    "os_compute_api:os-suspend-server:suspend": MEMBER,
    "os_compute_api:os-suspend-server:resume": MEMBER,
    "os_compute_api:os-lock-server:lock": MEMBER,
    "os_compute_api:os-lock-server:unlock": MEMBER,
    "os_compute_api:os-lock-server:unlock:unlock_override": ADMIN_ONLY,
    "os_compute_api:os-admin-actions:reset_state": ADMIN_ONLY,
    "os_compute_api:os-console-output": MEMBER,
    "os_compute_api:os-migrate-server:migrate_live": MANAGER,
    "os_compute_api:os-migrate-server:migrate_live:host": ADMIN_ONLY,
    "os_compute_api:server-metadata:index": READER,
    "os_compute_api:server-metadata:show": READER,
    "os_compute_api:server-metadata:create": MEMBER,
    "os_compute_api:server-metadata:update_all": MEMBER,
    "os_compute_api:server-metadata:update": MEMBER,
    "os_compute_api:server-metadata:delete": MEMBER,
    "os_compute_api:os-server-tags:index": READER,
    "os_compute_api:os-server-tags:show": READER,
    "os_compute_api:os-server-tags:update_all": MEMBER,
    "os_compute_api:os-server-tags:update": MEMBER,
    "os_compute_api:os-server-tags:delete_all": MEMBER,
    "os_compute_api:os-server-tags:delete": MEMBER,
    "os_compute_api:os-instance-actions:list": READER,
    "os_compute_api:os-instance-actions:show": READER,
    "os_compute_api:os-instance-actions:events": ADMIN_ONLY,
    "os_compute_api:servers:migrations:index": MANAGER,
    "os_compute_api:servers:migrations:show": ADMIN_ONLY,
    "os_compute_api:servers:migrations:force_complete": MANAGER,
    "os_compute_api:servers:migrations:delete": MANAGER,
    "os_compute_api:os-flavor-manage:create": ADMIN_ONLY,
    "os_compute_api:os-flavor-manage:delete": ADMIN_ONLY,
    "os_compute_api:os-flavor-access": ADMIN_ONLY,
    "os_compute_api:os-flavor-access:add_tenant_access": ADMIN_ONLY,
    "os_compute_api:os-flavor-access:remove_tenant_access": ADMIN_ONLY,
    "os_compute_api:os-flavor-extra-specs:index": READER,
    "os_compute_api:os-flavor-extra-specs:show": READER,
    "os_compute_api:os-flavor-extra-specs:create": ADMIN_ONLY,
    "os_compute_api:os-flavor-extra-specs:update": ADMIN_ONLY,
    "os_compute_api:os-flavor-extra-specs:delete": ADMIN_ONLY,
    "os_compute_api:os-keypairs:index": OWNER_USER,
    "os_compute_api:os-keypairs:create": OWNER_USER,
    "os_compute_api:os-keypairs:show": OWNER_USER,
    "os_compute_api:os-keypairs:delete": OWNER_USER,
    "os_compute_api:os-hypervisors:list": ADMIN_ONLY,
    "os_compute_api:os-hypervisors:list-detail": ADMIN_ONLY,
    "os_compute_api:os-hypervisors:statistics": ADMIN_ONLY,
    "os_compute_api:os-hypervisors:show": ADMIN_ONLY,
    "os_compute_api:os-hypervisors:uptime": ADMIN_ONLY,
    "os_compute_api:os-hypervisors:search": ADMIN_ONLY,
    "os_compute_api:os-services:list": ADMIN_ONLY,
    "os_compute_api:os-services:update": ADMIN_ONLY,
    "os_compute_api:os-services:delete": ADMIN_ONLY,
    "os_compute_api:os-aggregates:index": ADMIN_ONLY,
    "os_compute_api:os-aggregates:create": ADMIN_ONLY,
    "os_compute_api:os-aggregates:show": ADMIN_ONLY,
    "os_compute_api:os-aggregates:update": ADMIN_ONLY,
    "os_compute_api:os-aggregates:delete": ADMIN_ONLY,
    "os_compute_api:os-aggregates:set_metadata": ADMIN_ONLY,
    "os_compute_api:os-aggregates:add_host": ADMIN_ONLY,
    "os_compute_api:os-aggregates:remove_host": ADMIN_ONLY,
    "os_compute_api:os-availability-zone:list": ANYONE,
    "os_compute_api:os-availability-zone:detail": ADMIN_ONLY,
    "os_compute_api:os-migrations:index": MANAGER,
    "os_compute_api:os-migrations:index:all_projects": ADMIN_ONLY,
    "os_compute_api:os-migrations:index:host": ADMIN_ONLY,
    "os_compute_api:limits": ANYONE,
    "os_compute_api:limits:other_project": ADMIN_ONLY,
    "os_compute_api:os-quota-sets:update": ADMIN_ONLY,
    "os_compute_api:os-quota-sets:defaults": ANYONE,
    "os_compute_api:os-quota-sets:show": READER,
    "os_compute_api:os-quota-sets:delete": ADMIN_ONLY,
    "os_compute_api:os-quota-sets:detail": READER,
    "os_compute_api:os-simple-tenant-usage:show": READER,
    "os_compute_api:os-simple-tenant-usage:list": ADMIN_ONLY,
    "os_compute_api:ips:index": READER,
    "os_compute_api:ips:show": READER,
    "os_compute_api:os-attach-interfaces:list": READER,
    "os_compute_api:os-attach-interfaces:show": READER,
    # filemem's own rules (README, "Projects, policy and quotas").
    "filemem:flavors:index": ANYONE,
    "filemem:flavors:show": ANYONE,
    "filemem:images:index": ANYONE,
    "filemem:images:show": ANYONE,
    "filemem:images:upload": ADMIN_ONLY,
    "filemem:images:add": MEMBER,
    "filemem:images:modify": MEMBER,
    "filemem:images:delete": MEMBER,
    "filemem:images:upload_data": MEMBER,
    "filemem:images:download": ANYONE,
    "filemem:agent": ADMIN_ONLY,
    "filemem:placement:proxy": ADMIN_ONLY,
    "filemem:identity:projects": ANYONE,
    "filemem:network:read": ANYONE,
}
BASE_RULES = {
    "context_is_admin",
    "project_manager_api",
    "project_member_api",
    "project_reader_api",
    "project_manager_or_admin",
    "project_member_or_admin",
    "project_reader_or_admin",
}


def caller(who: str) -> Caller:
    return ADMIN if who == "admin" else CALLERS[who]


@pytest.fixture(scope="module")
def enforcer() -> policy.Enforcer:
    return make_enforcer()


def test_every_rule_is_expected_and_documented() -> None:
    rules = list_rules()
    names = [rule.name for rule in rules]
    assert len(names) == len(set(names))
    assert set(names) == set(EXPECTED) | BASE_RULES
    for rule in rules:
        if rule.name not in BASE_RULES:
            assert isinstance(rule, policy.DocumentedRuleDefault), rule.name
            assert rule.scope_types == ["project"], rule.name
            assert rule.description and rule.operations, rule.name


@pytest.mark.parametrize("rule", sorted(EXPECTED))
def test_rule_default(enforcer: policy.Enforcer, rule: str) -> None:
    target = {"project_id": PROJECT_A, "user_id": "user-a"}
    allowed = {who for who in WHO if enforcer.authorize(rule, target, credentials(caller(who)))}
    assert allowed == EXPECTED[rule]


def test_every_route_has_a_registered_rule() -> None:
    registered = {rule.name for rule in list_rules()}
    for route in ROUTES:
        if route.public:
            assert route.rule is None, route.path
        else:
            assert route.rule == BY_ACTION or route.rule in registered, route.path


def _path(route: Route) -> str:
    """The route's path with ids that name nothing (projects: PROJECT_A, the target)."""
    values = {
        "server_id": str(uuidlib.uuid4()),
        "project_id": PROJECT_A,
        "tenant_id": PROJECT_A,
        "path": "resource_providers/none",
        "hypervisor_id": "999",
        "aggregate_id": "999",
        "migration_id": "999",
    }
    path = route.path.removeprefix("/v2.1")
    return re.sub(r"\{(\w+)(?::path)?\}", lambda m: values.get(m.group(1), "none"), path)


def _expected(route: Route, who: str) -> bool:
    """Whether `who` passes the route's rule: the target is the project in the path, or the
    caller's own project (so a member of another project is a member there), and the
    caller's own user for os-keypairs."""
    assert route.rule is not None
    if "os-keypairs" in route.rule:
        return True
    in_path = "{project_id}" in route.path or "{tenant_id}" in route.path
    if who == "member_b" and not in_path:
        return "member_a" in EXPECTED[route.rule]
    return who in EXPECTED[route.rule]


GUARDED = [r for r in ROUTES if not r.public and r.rule not in (None, BY_ACTION)]


@pytest.mark.parametrize("route", GUARDED, ids=lambda r: f"{r.method} {r.path}")
def test_route_refuses_whom_its_rule_refuses(tenants_module: Tenants, route: Route) -> None:
    """Every guarded route and every caller, over the API: a refusal is nova's 403."""
    for who in WHO:
        response = tenants_module.call(who, route.method, _path(route), "latest")
        if _expected(route, who):
            assert response.status_code != 403, (who, response.text)
        else:
            assert response.status_code == 403, (who, response.text)
            message = f"Policy doesn't allow {route.rule} to be performed."
            assert response.json() == {"forbidden": {"message": message, "code": 403}}


def test_every_server_action_has_its_rule() -> None:
    """POST /servers/{id}/action checks the rule of the action in the body: each has one."""
    from filemem.api.handlers.server_actions import ACTIONS, ASYNC_ACTIONS
    from filemem.api.policies.servers import ACTION_RULES

    assert set(ACTIONS) | set(ASYNC_ACTIONS) == set(ACTION_RULES)
