"""Policy enforcement: oslo.policy's Enforcer over filemem's defaults (nova's names), and the
small functions handlers call: authorize, allowed, is_admin, route_guard."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from fastapi import Request
from oslo_config import cfg
from oslo_policy import policy

from filemem import conf as filemem_conf
from filemem.api.errors import ApiError
from filemem.api.identity import Caller, get_caller
from filemem.api.policies import list_rules

# Routes whose host-credential callers (agents) are authorized per host elsewhere, not by policy.
HOST_CREDENTIAL = "host_credential"


class PolicyNotAuthorized(ApiError):
    """nova's answer to a refused rule: 403 "Policy doesn't allow <rule> to be performed."."""

    status = 403

    def __init__(self, rule: str) -> None:
        super().__init__(f"Policy doesn't allow {rule} to be performed.")


def make_enforcer(conf: cfg.ConfigOpts | None = None) -> policy.Enforcer:
    """An Enforcer reading [oslo_policy] of `conf` (policy_file overrides the defaults)."""
    if conf is None:
        conf = cfg.ConfigOpts()
        conf([], project="filemem", default_config_files=[])
    enforcer = policy.Enforcer(conf)
    enforcer.register_defaults(list_rules())
    enforcer.load_rules()
    return enforcer


def get_enforcer() -> policy.Enforcer:
    """`oslo.policy.enforcer` entry point for oslopolicy-policy-generator and
    oslopolicy-list-redundant: the defaults and the policy file that filemem.conf names
    ([oslo_policy] policy_file), as filemem-api would load them. The conf is the tool's
    --config-file (its other arguments are its own), else /etc/filemem/filemem.conf."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--config-file", action="append")
    known, _rest = parser.parse_known_args(sys.argv[1:])
    return make_enforcer(filemem_conf.load(config_files=known.config_file))


def credentials(caller: Caller) -> dict[str, Any]:
    """What oslo.policy checks: roles, the project (a project-scoped token) and the user."""
    return {
        "user_id": caller.user_id,
        "project_id": caller.project_id,
        "roles": sorted(caller.roles),
        "is_admin": caller.is_admin,
    }


def _enforcer(request: Request) -> policy.Enforcer:
    enforcer = request.app.state.enforcer
    assert isinstance(enforcer, policy.Enforcer)
    return enforcer


def default_target(caller: Caller) -> dict[str, str]:
    return {"project_id": caller.project_id, "user_id": caller.user_id}


def allowed(request: Request, rule: str, target: dict[str, str] | None = None) -> bool:
    """Whether the caller passes `rule` on `target` (default: its own project and user)."""
    caller = get_caller(request)
    creds = credentials(caller)
    try:
        return bool(_enforcer(request).authorize(rule, target or default_target(caller), creds))
    except policy.InvalidScope:
        return False


def authorize(request: Request, rule: str, target: dict[str, str] | None = None) -> None:
    """403 with nova's message unless the caller passes `rule` on `target`."""
    if not allowed(request, rule, target):
        raise PolicyNotAuthorized(rule)


def is_admin(request: Request) -> bool:
    """nova's context.is_admin: the static admin token, or whoever passes context_is_admin;
    such a caller sees every project's servers by id."""
    return get_caller(request).is_admin or allowed(request, "context_is_admin")


def project_target(request: Request) -> dict[str, str]:
    """The target of a route naming a project in its path (quota sets, usage), else the
    caller's own project."""
    caller = get_caller(request)
    params = request.path_params
    project = params.get("project_id") or params.get("tenant_id") or caller.project_id
    return {"project_id": str(project), "user_id": caller.user_id}


def route_guard(rule: str, host_credentials: bool = False) -> Callable[[Request], None]:
    """A dependency checking the route's rule before its handler runs; `host_credentials`
    lets agents' host credentials through (they are authorized per host by the agent API)."""

    def guard(request: Request) -> None:
        if host_credentials and get_caller(request).kind == HOST_CREDENTIAL:
            return
        authorize(request, rule, project_target(request))

    return guard
