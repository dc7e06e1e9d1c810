"""Who is calling: the Caller every authenticator produces and every handler authorizes against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from fastapi import Request
from starlette.types import Scope

# Without Keystone every caller is the admin; Placement still wants a project and a user.
DEFAULT_PROJECT_ID = "filemem"
DEFAULT_USER_ID = "filemem"

CredentialKind = Literal["admin_token", "host_credential", "keystone"]


@dataclass(frozen=True)
class Caller:
    """The authenticated identity of one request.

    `host` is set only for a compute agent's credential: such a caller may touch its own host's
    service record and instances and nothing else.
    """

    user_id: str
    project_id: str
    roles: frozenset[str] = field(default_factory=frozenset)
    is_admin: bool = False
    host: str | None = None
    kind: CredentialKind = "admin_token"


ADMIN = Caller(
    user_id=DEFAULT_USER_ID,
    project_id=DEFAULT_PROJECT_ID,
    roles=frozenset({"admin", "member", "reader"}),
    is_admin=True,
)

# A token in, the caller it proves, or None when this authenticator does not know the token.
# It may block (a database, Keystone over HTTP): the auth middleware runs it in a thread.
Authenticator = Callable[[str], "Caller | None"]


class IdentityUnavailable(Exception):
    """An authenticator could not decide (its identity service is out of reach): 503."""


def set_caller(scope: Scope, caller: Caller) -> None:
    """Remember the caller for the handlers (Request.state is backed by scope["state"])."""
    scope.setdefault("state", {})["caller"] = caller


def get_caller(request: Request) -> Caller:
    """The caller the auth middleware proved; every non-public route has one."""
    caller = getattr(request.state, "caller", None)
    assert isinstance(caller, Caller), "route reached without authentication"
    return caller
