"""Token auth: X-Auth-Token must prove a Caller (the static admin token, or a further
authenticator such as a host credential or Keystone), except on public paths."""

from __future__ import annotations

import hmac
from collections.abc import Collection, Sequence

from fastapi.security import APIKeyHeader
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from filemem.api.errors import send_error
from filemem.api.identity import ADMIN, Authenticator, Caller, IdentityUnavailable, set_caller

TOKEN_HEADER = "X-Auth-Token"  # noqa: S105 - a header name, not a secret
# Documents the scheme in /openapi.json; the check itself is TokenAuthMiddleware, which runs
# before routing and body parsing, so an unauthenticated caller learns nothing about a route.
token_scheme = APIKeyHeader(
    name=TOKEN_HEADER,
    auto_error=False,
    description="[api] admin_token of filemem-api, or a Keystone token ([api] auth_strategy)",
)


def token_matches(given: str | None, expected: str) -> bool:
    if not given or not expected:
        return False
    return hmac.compare_digest(
        given.encode("utf-8", "surrogateescape"), expected.encode("utf-8", "surrogateescape")
    )


class TokenAuthMiddleware:
    """401 for a missing or wrong token (bodies are bounded outside it: body_limit.py)."""

    def __init__(
        self,
        app: ASGIApp,
        token: str,
        public_paths: Collection[str],
        authenticators: Sequence[Authenticator] = (),
        www_authenticate: str = 'Keystone uri=""',
    ) -> None:
        self.app = app
        self._token = token  # empty: no static admin token (auth_strategy = keystone)
        self._public = frozenset(public_paths)
        self._authenticators = tuple(authenticators)
        self._www_authenticate = www_authenticate

    def authenticate(self, given: str | None) -> Caller | None:
        """The static admin token first, then each further authenticator in order."""
        if given is None:
            return None
        if token_matches(given, self._token):
            return ADMIN
        for authenticator in self._authenticators:
            caller = authenticator(given)
            if caller is not None:
                return caller
        return None

    async def _prove(self, given: str | None) -> Caller | None:
        """authenticate(), with the authenticators (which may block) off the event loop."""
        if given is None or token_matches(given, self._token) or not self._authenticators:
            return self.authenticate(given)
        return await run_in_threadpool(self.authenticate, given)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}
        if scope.get("path", "") not in self._public:
            raw = headers.get(TOKEN_HEADER.lower())
            try:
                caller = await self._prove(raw.decode("latin-1") if raw else None)
            except IdentityUnavailable as exc:
                await send_error(send, 503, str(exc))
                return
            if caller is None:
                challenge = {"WWW-Authenticate": self._www_authenticate}
                await send_error(send, 401, "Authentication required", challenge)
                return
            set_caller(scope, caller)
        await self.app(scope, receive, send)
