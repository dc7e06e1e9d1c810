"""One row of the route table: a URL, its handler, status, policy rule and authorization."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    endpoint: Callable[..., Any]
    status: int = 200
    public: bool = False
    tag: str = "compute"
    in_schema: bool = True
    # The policy rule checked before the handler runs (filemem/api/policies); BY_ACTION for
    # POST .../action, whose handler checks the rule of the action in the body.
    rule: str | None = None
    # Authorization of host credentials after the policy (filemem/api/agent_authz.py); None
    # closes the route to them.
    authz: Callable[..., None] | None = None


BY_ACTION = "by-action"
