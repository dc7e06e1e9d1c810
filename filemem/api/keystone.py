"""Keystone tokens as Callers: keystonemiddleware's auth_token validates, oslo.context reads it.

filemem-api is ASGI and keystonemiddleware's AuthProtocol is WSGI middleware. Two adapters were
possible: wrap the whole FastAPI app in an ASGI→WSGI→ASGI bridge so that AuthProtocol sits in
front of it, or keep filemem's own TokenAuthMiddleware and make Keystone one more
`Authenticator` in its chain. The second is used here:

- the chain stays one place that decides who the caller is (host credentials for agents go
  first, Keystone after them), with one 401 shape and no second HTTP stack per request;
- AuthProtocol is still used whole, through its public WSGI interface: the authenticator calls
  it with a minimal environ carrying only X-Auth-Token, and its inner app is reached only when
  the token is valid. Everything keystonemiddleware does stays its own: validation against
  Keystone with the service credentials of [keystone_authtoken], the token cache
  (token_cache_time, memcached_servers), revocation, service tokens, and the X-User-Id,
  X-Project-Id, X-Roles headers it sets for services;
- those headers are read by oslo.context's RequestContext.from_environ, as every OpenStack
  service reads them, and become Caller(kind="keystone", is_admin = "admin" in roles).

Validation may call Keystone over HTTP, so TokenAuthMiddleware runs authenticators in its
threadpool, never on the event loop. A token Keystone rejects (invalid, expired, revoked) proves
nothing (the chain then answers 401 with WWW-Authenticate: Keystone uri=...); Keystone out of
reach raises IdentityUnavailable (503), as keystonemiddleware answers in front of nova.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable, Iterable
from typing import Any

from keystonemiddleware import auth_token
from oslo_config import cfg
from oslo_context import context as oslo_context

from filemem.api.identity import Caller, IdentityUnavailable

LOG = logging.getLogger(__name__)

GROUP = "keystone_authtoken"
ADMIN_ROLE = "admin"
_IDENTITY_KEY = "filemem.keystone_identity"

StartResponse = Callable[..., Any]


def register_opts(conf: cfg.ConfigOpts) -> None:
    """[keystone_authtoken] as keystonemiddleware defines it (AuthProtocol registers the same
    options again, and its auth plugin's own, when it is built)."""
    for group, opts in auth_token.list_opts():
        conf.register_opts(opts, group=group)


def caller_from_environ(environ: dict[str, Any]) -> Caller | None:
    """The Caller keystonemiddleware's identity headers describe, or None when they do not
    describe a confirmed, project-scoped user (filemem's resources belong to projects)."""
    if environ.get("HTTP_X_IDENTITY_STATUS") != "Confirmed":
        return None
    ctx = oslo_context.RequestContext.from_environ(environ)
    if not ctx.user_id or not ctx.project_id:
        LOG.info("refusing a Keystone token that is not project-scoped (user %s)", ctx.user_id)
        return None
    roles = frozenset(role.lower() for role in ctx.roles)
    return Caller(
        user_id=ctx.user_id,
        project_id=ctx.project_id,
        roles=roles,
        is_admin=ADMIN_ROLE in roles,
        kind="keystone",
    )


def _record_identity(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """AuthProtocol's inner app: reached only with a valid token; keeps what it was told."""
    environ[_IDENTITY_KEY].update(
        (key, value) for key, value in environ.items() if key.startswith("HTTP_")
    )
    start_response("204 No Content", [])
    return [b""]


def _environ(token: str, identity: dict[str, Any]) -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "SERVER_NAME": "filemem-api",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": io.StringIO(),
        "HTTP_X_AUTH_TOKEN": token,
        _IDENTITY_KEY: identity,
    }


class KeystoneAuthenticator:
    """An Authenticator: a Keystone token in, its Caller out (None: Keystone rejects it)."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        register_opts(conf)
        # delay_auth_decision off: the inner app is reached only with a valid token.
        self._protocol = auth_token.AuthProtocol(
            _record_identity, {"oslo_config_config": conf, "delay_auth_decision": False}
        )

    def __call__(self, token: str) -> Caller | None:
        identity: dict[str, Any] = {}
        status: list[str] = []

        def start_response(line: str, headers: list[tuple[str, str]], *exc: Any) -> None:
            status.append(line)

        body = self._protocol(_environ(token, identity), start_response)
        for _chunk in body:  # a WSGI body must be consumed (and closed)
            pass
        getattr(body, "close", lambda: None)()
        code = int(status[0].split()[0]) if status else 500
        if code >= 500:
            raise IdentityUnavailable(f"Keystone could not validate the token ({status[0]})")
        if not identity:
            return None
        return caller_from_environ(identity)
