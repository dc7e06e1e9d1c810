"""Every answer carries nova's request id headers; instance actions record the same id."""

from __future__ import annotations

import uuid

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEADER = "x-openstack-request-id"
# nova still sends its own older name too (its compute_req_id middleware); clients read either.
COMPUTE_HEADER = "x-compute-request-id"


def new_request_id() -> str:
    return f"req-{uuid.uuid4()}"


def request_id(request: Request) -> str:
    """This request's id (a fresh one outside the middleware, e.g. in unit tests)."""
    value = request.scope.setdefault("state", {}).setdefault("request_id", new_request_id())
    assert isinstance(value, str)
    return value


class RequestIdMiddleware:
    """Gives each HTTP request an id, stored in scope["state"] and sent back as a header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = new_request_id()
        scope.setdefault("state", {})["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers[HEADER] = rid
                headers[COMPUTE_HEADER] = rid
            await send(message)

        await self.app(scope, receive, send_with_id)
