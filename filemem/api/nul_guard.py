"""Refuses a NUL character anywhere in a request's text (path, query, JSON strings and keys).

PostgreSQL cannot store NUL in text and SQLite stores it where other code cuts at it, so no
NUL may reach a handler: one check at the edge, not one per schema or per column.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl

from starlette.exceptions import HTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from filemem.api.errors import send_error, too_large_message
from filemem.api.raw_bodies import is_raw_upload

NUL = "\x00"
_MAX_NAME = 64


def _name(text: str) -> str:
    """A client-given name fit for a message: NULs shown as \\x00, long names cut."""
    shown = text.replace(NUL, "\\x00")
    return shown if len(shown) <= _MAX_NAME else shown[:_MAX_NAME] + "..."


def nul_in_target(path: str, query_string: bytes) -> str | None:
    """Where a NUL is in the (percent-decoded) path or query string, or None."""
    if NUL in path:
        return "the request path"
    # As Starlette decodes it for the handlers: latin-1 bytes, %-escapes as UTF-8.
    for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if NUL in key or NUL in value:
            return f"query parameter '{_name(key)}'"
    return None


def _at(path: Sequence[str]) -> str:
    return "the request body at " + ".".join(path) if path else "the request body"


def nul_in_document(document: Any) -> str | None:
    """Where a NUL is in a parsed JSON document's strings or keys, or None."""
    stack: list[tuple[tuple[str, ...], Any]] = [((), document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if NUL in value:
                return _at(path)
        elif isinstance(value, dict):
            for key, item in value.items():
                if NUL in key:
                    return f"a key in {_at(path)}"
                stack.append(((*path, _name(key)), item))
        elif isinstance(value, list):
            stack.extend(((*path, str(index)), item) for index, item in enumerate(value))
    return None


def nul_in_body(body: bytes) -> str | None:
    """Where a NUL is in a JSON body, or None (also for a body that is not JSON: the
    handlers refuse that with their own message)."""
    # In JSON a NUL is the escape \u0000, or raw 0 bytes of a UTF-16/32 encoding.
    if b"\\u0000" not in body and b"\x00" not in body:
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return nul_in_document(document)


async def _read_body(receive: Receive) -> tuple[list[Message], bytes]:
    """Every message up to the end of the body, and the body."""
    messages: list[Message] = []
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request" or not message.get("more_body", False):
            break
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    return messages, body


def _replay(messages: list[Message], receive: Receive) -> Receive:
    pending = list(messages)

    async def replayed() -> Message:
        return pending.pop(0) if pending else await receive()

    return replayed


class NulGuardMiddleware:
    """400 naming where the NUL was, before routing; the body is read here (under the body
    limit, which runs outside) and replayed to the app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        where = nul_in_target(scope.get("path", ""), scope.get("query_string", b""))
        if where is None and not is_raw_upload(scope):
            try:
                messages, body = await _read_body(receive)
            except HTTPException as exc:
                # The body limit's 413 or 408, answered as every other error is.
                await send_error(send, exc.status_code, _limit_message(scope, exc))
                return
            where = nul_in_body(body)
            receive = _replay(messages, receive)
        if where is not None:
            message = f"NUL character (\\u0000) is not allowed in {where}."
            await send_error(send, 400, message)
            return
        await self.app(scope, receive, send)


def _limit_message(scope: Scope, exc: HTTPException) -> str:
    if exc.status_code == 413:
        return too_large_message(scope.get(MAX_BODY_SIZE_SCOPE_KEY))
    return str(exc.detail)
