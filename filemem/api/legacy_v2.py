"""/v2: nova's v2.0 endpoint, served as v2.1 at microversion 2.1 (as nova's v2.1 code serves it)."""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

LEGACY = "/v2"
CURRENT = "/v2.1"
# v2.0 has no microversions: a client's version header would not be read by nova there.
_VERSION_HEADERS = (b"openstack-api-version", b"x-openstack-nova-api-version")


def is_legacy(scope: Scope) -> bool:
    return bool(scope.get("state", {}).get("legacy_v2"))


class LegacyV2Middleware:
    """Rewrites /v2 and /v2/... to /v2.1..., drops the microversion headers and marks the
    request, so the version document can answer as v2.0."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path == LEGACY or path.startswith(LEGACY + "/"):
            scope = dict(scope)
            scope["path"] = CURRENT + path[len(LEGACY) :]
            scope["raw_path"] = scope["path"].encode("utf-8", "surrogateescape")
            scope["headers"] = [
                (k, v) for k, v in scope.get("headers", []) if k.lower() not in _VERSION_HEADERS
            ]
            scope["state"] = {**scope.get("state", {}), "legacy_v2": True}
        await self.app(scope, receive, send)
