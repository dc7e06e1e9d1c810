"""The one bound on every request body: its size, counted as it arrives, and its time."""

from __future__ import annotations

import asyncio

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import RequestBodyLimitMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from filemem.api.errors import send_error, too_large_message
from filemem.api.raw_bodies import is_raw_upload

# Bodies are small JSON documents (the largest, a server with metadata, is a few KiB).
MAX_BODY_BYTES = 1024 * 1024
DEFAULT_BODY_TIMEOUT = 30.0
_CLOSE = (b"connection", b"close")


class BodyTimeout(HTTPException):
    """The body did not arrive in time; an HTTPException so that FastAPI, which turns other
    errors raised while it reads a body into a 400, lets it through to the error handlers."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"The request body did not arrive within {seconds:g} s.")


def _body_expected(headers: Headers) -> bool:
    return "transfer-encoding" in headers or headers.get("content-length", "0") != "0"


def _declared_length(headers: Headers) -> int | None:
    value = headers.get("content-length", "")
    # ASCII digits only: a latin-1 header may hold "\xb3" ("³"), which isdigit() accepts.
    return int(value) if value.isascii() and value.isdigit() else None


class _Guard:
    """One request's receive (under a deadline until the body is complete) and send (which
    closes the connection when the answer leaves part of the body unread)."""

    def __init__(self, receive: Receive, send: Send, scope: Scope, timeout: float) -> None:
        self._receive = receive
        self._send = send
        self._timeout = timeout
        self._deadline = asyncio.get_running_loop().time() + timeout
        self.complete = not _body_expected(Headers(scope=scope))
        self.started = False

    async def receive(self) -> Message:
        if self.complete:
            # After the body only a disconnect is left to hear of: no deadline on that wait.
            return await self._receive()
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            raise BodyTimeout(self._timeout) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            self.complete = True
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
            if not self.complete:
                # The rest of the body would be read as the next request: end the connection.
                message = {**message, "headers": [*message.get("headers", []), _CLOSE]}
        await self._send(message)


class BodyLimitMiddleware:
    """413 for a body over `max_bytes`: at once when Content-Length declares it, else as soon
    as the bytes received pass it (chunked bodies); 408 when the body takes over `timeout`
    seconds. Counting is Starlette's RequestBodyLimitMiddleware, which wraps `receive` and
    raises an HTTPException that FastAPI hands to the app's error handlers."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = MAX_BODY_BYTES,
        timeout: float = DEFAULT_BODY_TIMEOUT,
    ) -> None:
        self._limited = RequestBodyLimitMiddleware(app, max_body_size=max_bytes)
        self._app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_raw_upload(scope):
            await self._app(scope, receive, send)
            return
        declared = _declared_length(Headers(scope=scope))
        if declared is not None and declared > self.max_bytes:
            await send_error(send, 413, too_large_message(self.max_bytes), {"connection": "close"})
            return
        guard = _Guard(receive, send, scope, self.timeout)
        try:
            await self._limited(scope, guard.receive, guard.send)
        except HTTPException as exc:
            # Raised while the body was read outside FastAPI's handlers (other middleware).
            if guard.started or exc.status_code not in (408, 413):
                raise
            message = str(exc.detail) if exc.status_code == 408 else None
            await send_error(
                guard.send, exc.status_code, message or too_large_message(self.max_bytes)
            )
