"""create_app(ctx): the FastAPI application of filemem-api."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.types import Lifespan

from filemem.api.auth import TokenAuthMiddleware
from filemem.api.body_limit import MAX_BODY_BYTES, BodyLimitMiddleware
from filemem.api.context import ApiContext
from filemem.api.errors import install_handlers
from filemem.api.host_auth import HostCredentialAuthenticator
from filemem.api.identity import Authenticator
from filemem.api.legacy_v2 import LegacyV2Middleware
from filemem.api.microversion import MicroversionMiddleware
from filemem.api.nul_guard import NulGuardMiddleware
from filemem.api.policy import make_enforcer
from filemem.api.request_id import RequestIdMiddleware
from filemem.api.routes import OPENAPI_PATH, PUBLIC_PATHS, build_router
from filemem.conductor import build_cleanup
from filemem.db.change_listener import ChangeListener

LOG = logging.getLogger(__name__)

DESCRIPTION = (
    "A subset of the OpenStack Compute API v2.1 (servers, actions, flavors, images, "
    "os-hypervisors, os-services), glance-style images, an identity v3 version document for "
    "the openstack CLI, and filemem's agent API under /filemem/v1. Every request except the "
    "version documents carries X-Auth-Token: the admin token, or a host credential, which "
    "reaches only its own host's agent routes."
)


_ERROR_SCHEMA = {
    "type": "object",
    "description": 'nova-style error: {"badRequest": {"message": "...", "code": 400}}',
    "additionalProperties": {
        "type": "object",
        "properties": {"message": {"type": "string"}, "code": {"type": "integer"}},
    },
}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR_SCHEMA}}}


class _App(FastAPI):
    """FastAPI documents validation errors as 422; filemem answers 400 as nova does."""

    _documented = False

    def openapi(self) -> dict[str, Any]:
        schema = super().openapi()
        if not self._documented:
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    responses = operation.setdefault("responses", {})
                    if responses.pop("422", None) is not None:
                        responses["400"] = _error_response("Invalid request, with the reason")
                    if operation.get("security"):
                        responses["401"] = _error_response("Missing or wrong X-Auth-Token")
                        responses["403"] = _error_response(
                            "Not allowed to this caller (a host credential outside its own "
                            "host's agent routes)"
                        )
            components = schema.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                components.pop(name, None)
            self._documented = True
        return schema


async def _sweep_builds(ctx: ApiContext, timeout: float) -> None:
    """At start and then every build_cleanup_interval: builds an API process abandoned go to
    ERROR, claims of servers with no row are released. A failed sweep (Placement or the
    database down) is logged and tried again at the next interval."""
    while True:
        try:
            await run_in_threadpool(build_cleanup.sweep, ctx.database, ctx.placement, timeout)
        except Exception:
            LOG.exception("the sweep for abandoned builds failed; trying again later")
        await asyncio.sleep(ctx.build_cleanup_interval)


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """On PostgreSQL, listen for the changes other API processes commit (one listener a
    process), so this process's waiting long-polls wake for them too; sweep for abandoned
    builds when [api] build_timeout is set."""
    ctx: ApiContext = app.state.ctx
    listener = None
    if ctx.change_notifications and ctx.database.backend == "postgresql":
        listener = ChangeListener(ctx.database.engine, ctx.changes.wake, ctx.changes.wake_all)
        listener.start()
    app.state.change_listener = listener
    sweeper = None
    if ctx.build_timeout is not None:
        sweeper = asyncio.create_task(_sweep_builds(ctx, ctx.build_timeout))
    try:
        yield
    finally:
        if sweeper is not None:
            sweeper.cancel()
        if listener is not None:
            await run_in_threadpool(listener.stop)


def _routes_only(lifespan: Lifespan[FastAPI] | None = None, *, identity: bool = True) -> FastAPI:
    app = _App(
        title="filemem",
        version="2.1",
        description=DESCRIPTION,
        openapi_url=OPENAPI_PATH,
        docs_url=None,
        redoc_url=None,
        # /v2.1 and /v2.1/ are both served; no redirects between them.
        redirect_slashes=False,
        lifespan=lifespan,
    )
    install_handlers(app)
    app.include_router(build_router(identity=identity))
    return app


def create_app(
    ctx: ApiContext,
    authenticators: Sequence[Authenticator] = (),
    keystone_uri: str | None = None,
) -> FastAPI:
    """The application serving `ctx`; every request but the public ones needs a token: the
    admin token, or one an authenticator proves (host credentials, Keystone).

    `keystone_uri` is set when users get their tokens from that Keystone: a 401 names it, and
    filemem's stand-in identity v3 documents are not served.
    """
    if not ctx.admin_token and not authenticators:
        raise ValueError("the API needs an admin token ([api] admin_token) or authenticators")
    app = _routes_only(_lifespan, identity=keystone_uri is None)
    app.state.ctx = ctx
    app.state.enforcer = make_enforcer(ctx.conf)
    # Added first, so it runs inside the token check: an unauthenticated caller gets 401 first.
    app.add_middleware(MicroversionMiddleware)
    # Inside the token check too (an unauthenticated body is never read), outside routing.
    app.add_middleware(NulGuardMiddleware)
    # After the static admin token: the credentials compute agents hold for their own host,
    # then the given ones (Keystone), then the context's (tests' stand-in identities).
    host_credentials = HostCredentialAuthenticator(ctx.database, ctx.project_id)
    app.add_middleware(
        TokenAuthMiddleware,
        token=ctx.admin_token,
        public_paths=PUBLIC_PATHS,
        authenticators=[host_credentials, *authenticators, *ctx.authenticators],
        www_authenticate=f'Keystone uri="{keystone_uri or ""}"',
    )
    # Outside the token check, whose public paths are the /v2.1 ones it rewrites /v2 to.
    app.add_middleware(LegacyV2Middleware)
    # Before anything reads a body, for every route: its size and time are bounded.
    app.add_middleware(BodyLimitMiddleware, max_bytes=MAX_BODY_BYTES, timeout=ctx.body_timeout)
    # Outermost: even a 401 or a 406 carries the request id.
    app.add_middleware(RequestIdMiddleware)
    return app


def openapi_document() -> dict[str, Any]:
    """The document served at /openapi.json, built without a running API."""
    return _routes_only().openapi()
