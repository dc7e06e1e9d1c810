"""The uvicorn configuration built from [api], and its deadline for a request's head."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import uvicorn
from starlette.types import Receive, Scope, Send

from filemem import conf as filemem_conf
from filemem.cmd.http_server import HeadDeadlineProtocol, server_config


def test_the_server_configuration_comes_from_api_options() -> None:
    conf = filemem_conf.load(config_files=[])
    conf.set_override("client_header_timeout", 1.5, group="api")
    conf.set_override("keep_alive_timeout", 7, group="api")
    conf.set_override("max_connections", 50, group="api")
    conf.set_override("max_header_bytes", 8192, group="api")
    config = server_config(object(), conf)
    assert config.timeout_keep_alive == 7
    assert config.limit_concurrency == 50
    assert config.h11_max_incomplete_event_size == 8192
    assert isinstance(config.http, type) and issubclass(config.http, HeadDeadlineProtocol)
    assert config.http.head_timeout == 1.5


async def _hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            pass
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def _closed_after(sock: socket.socket, limit: float) -> float:
    """Seconds until the server closed `sock` (reading what it sent), at most `limit`."""
    started = time.monotonic()
    sock.settimeout(limit)
    with contextlib.suppress(TimeoutError):
        while sock.recv(4096):
            pass
    return time.monotonic() - started


def test_the_server_closes_idle_and_trickling_heads_but_serves_a_whole_one() -> None:
    conf = filemem_conf.load(config_files=[])
    conf.set_override("client_header_timeout", 0.5, group="api")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(server_config(_hello, conf, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            time.sleep(0.01)
        address = sock.getsockname()
        idle = socket.create_connection(address)
        trickle = socket.create_connection(address)
        trickle.sendall(b"GET / HTTP/1.1\r\n")
        time.sleep(0.3)
        trickle.sendall(b"Host: x\r\n")  # more bytes do not extend the deadline
        assert _closed_after(idle, 5) < 1.0
        assert _closed_after(trickle, 5) < 1.0
        with socket.create_connection(address) as whole:
            whole.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            whole.settimeout(5)
            assert whole.recv(4096).startswith(b"HTTP/1.1 200 ")
    finally:
        server.should_exit = True
        thread.join(10)
