"""The API's edge as pure ASGI: the body limit (size as it arrives, time) and the NUL guard."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from filemem.api.body_limit import BodyLimitMiddleware
from filemem.api.errors import install_handlers
from filemem.api.nul_guard import NulGuardMiddleware, nul_in_body, nul_in_target

Receiver = Callable[[], Awaitable[Message]]


def scope_of(method: str = "POST", headers: dict[str, str] | None = None) -> Scope:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return {
        "type": "http",
        "method": method,
        "path": "/things",
        "raw_path": b"/things",
        "query_string": b"",
        "headers": raw,
    }


class Chunks:
    """A client sending `chunk` bytes per message, `count` messages (None: for ever)."""

    def __init__(self, chunk: int, count: int | None = None, stall: bool = False) -> None:
        self.chunk = chunk
        self.count = count
        self.stall = stall
        self.calls = 0

    async def __call__(self) -> Message:
        self.calls += 1
        if self.stall and self.calls > 1:
            await asyncio.sleep(3600)
        more = self.count is None or self.calls < self.count
        return {"type": "http.request", "body": b"x" * self.chunk, "more_body": more}


async def run(app: ASGIApp, scope: Scope, receive: Receive) -> tuple[int, dict[str, str], Any]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], headers, json.loads(body) if body.startswith(b"{") else body


def fastapi_app() -> FastAPI:
    app = FastAPI()
    install_handlers(app)

    @app.post("/things")
    def things(body: dict[str, Any]) -> dict[str, Any]:
        return {"keys": sorted(body)}

    return app


def limited(app: ASGIApp, limit: int = 4096, timeout: float = 5.0) -> ASGIApp:
    return BodyLimitMiddleware(NulGuardMiddleware(app), max_bytes=limit, timeout=timeout)


def test_a_declared_length_over_the_limit_is_413_before_the_app_runs() -> None:
    called: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope)

    receive = Chunks(10)
    status, headers, body = asyncio.run(
        run(limited(app), scope_of(headers={"content-length": "5000"}), receive)
    )
    assert (status, called, receive.calls) == (413, [], 0)
    assert headers["connection"] == "close"
    assert "4096 bytes" in body["overLimit"]["message"]


@pytest.mark.parametrize("guarded", [True, False])
def test_a_chunked_body_is_cut_off_at_the_limit(guarded: bool) -> None:
    """Through the NUL guard (which reads the body first) and straight into FastAPI."""
    receive = Chunks(1000)  # never ends: a client streaming without end
    app = fastapi_app()
    edge = limited(app) if guarded else BodyLimitMiddleware(app, max_bytes=4096)
    scope = scope_of(headers={"transfer-encoding": "chunked", "content-type": "application/json"})
    status, headers, body = asyncio.run(run(edge, scope, receive))
    assert status == 413
    assert receive.calls == 5  # 5000 bytes > 4096: not one message more was read
    assert headers["connection"] == "close"
    assert body["overLimit"]["message"] == (
        "Request body is larger than the API accepts (4096 bytes)."
    )


def test_a_body_within_the_limit_reaches_the_app_whole() -> None:
    document = json.dumps({"a": 1, "b": "x" * 3000}).encode()
    messages = [
        {"type": "http.request", "body": document[:1000], "more_body": True},
        {"type": "http.request", "body": document[1000:], "more_body": False},
    ]

    async def receive() -> Message:
        return messages.pop(0)

    json_type = "application/json"
    scope = scope_of(headers={"content-length": str(len(document)), "content-type": json_type})
    status, headers, body = asyncio.run(run(limited(fastapi_app()), scope, receive))
    assert (status, body) == (200, {"keys": ["a", "b"]})
    assert "connection" not in headers


def test_a_stalled_body_is_408_within_the_timeout() -> None:
    receive = Chunks(10, stall=True)
    scope = scope_of(headers={"content-length": "100", "content-type": "application/json"})

    async def timed() -> tuple[float, tuple[int, dict[str, str], Any]]:
        started = asyncio.get_running_loop().time()
        result = await run(limited(fastapi_app(), timeout=0.2), scope, receive)
        return asyncio.get_running_loop().time() - started, result

    elapsed, (status, headers, body) = asyncio.run(timed())
    assert status == 408
    assert 0.15 < elapsed < 2
    assert headers["connection"] == "close"
    assert "0.2 s" in body["requestTimeout"]["message"]


def test_after_the_body_waiting_for_a_disconnect_has_no_deadline() -> None:
    """A long-poll waits on receive() for the client to go: that wait is not the body's."""
    messages: list[Message] = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Message:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(0.3)
        return {"type": "http.disconnect"}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert (await receive())["type"] == "http.request"
        assert (await receive())["type"] == "http.disconnect"
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    status, headers, _ = asyncio.run(run(limited(app, timeout=0.05), scope_of("GET"), receive))
    assert status == 204
    assert "connection" not in headers


@pytest.mark.parametrize(
    ("path", "query", "where"),
    [
        ("/v2.1/os-keypairs/a\0b", b"", "the request path"),
        ("/v2.1/servers", b"host=a%00b", "query parameter 'host'"),
        ("/v2.1/servers", b"limit=1&na%00me=x", "query parameter 'na\\x00me'"),
        ("/v2.1/servers", b"host=a%5C0&name=%5Cu0000", None),
        ("/v2.1/servers", b"", None),
    ],
)
def test_nul_in_the_target(path: str, query: bytes, where: str | None) -> None:
    assert nul_in_target(path, query) == where


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (b'{"server": {"metadata": {"k": "v\\u0000"}}}', "the request body at server.metadata.k"),
        (
            b'{"server": {"metadata": {"k\\u0000": "v"}}}',
            "a key in the request body at server.metadata",
        ),
        (b'{"hosts": ["a", "b\\u0000"]}', "the request body at hosts.1"),
        (b'"\\u0000"', "the request body"),
        ('{"k": "\\u0000"}'.encode("utf-16"), "the request body at k"),
        (b'{"k": "\\\\u0000"}', None),  # an escaped backslash, then the text u0000
        (b'{"k": "v\\u0000', None),  # not JSON: the handler says so
        (b"[" * 100000, None),
        (b"", None),
    ],
)
def test_nul_in_the_body(body: bytes, where: str | None) -> None:
    assert nul_in_body(body) == where


def test_the_nul_guard_refuses_before_the_app_and_names_the_place() -> None:
    called: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append(scope)

    body = b'{"keypair": {"name": "k", "user_id": "u\\u0000"}}'
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        return messages.pop(0)

    status, _, answer = asyncio.run(run(NulGuardMiddleware(app), scope_of(), receive))
    assert (status, called) == (400, [])
    assert answer["badRequest"]["message"] == (
        "NUL character (\\u0000) is not allowed in the request body at keypair.user_id."
    )
