"""filemem-api's listening socket: its connections get TCP_NODELAY, so kept-alive answers are
not held back by Nagle's algorithm (~40 ms each against a delayed ACK)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import uvicorn

from filemem.cmd.api import listening_socket, url_of


def test_accepted_connections_have_tcp_nodelay() -> None:
    async def scenario() -> int:
        seen: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                seen.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        sock = listening_socket("127.0.0.1", 0)
        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        try:
            host, port = sock.getsockname()[:2]
            _reader, writer = await asyncio.open_connection(host, port)
            value = await asyncio.wait_for(seen, 10)
            writer.close()
            return value
        finally:
            server.close()
            await server.wait_closed()

    assert asyncio.run(scenario()) != 0


async def _hello(scope: dict[str, object], _receive: object, send: object) -> None:
    if scope["type"] != "http":
        return
    assert callable(send)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def test_kept_alive_requests_through_uvicorn_answer_without_the_delayed_ack() -> None:
    sock = listening_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(_hello, log_level="warning", lifespan="off"))

    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        with httpx.Client(base_url=url_of(sock)) as client:
            client.get("/")
            took = []
            for _ in range(10):
                started = time.monotonic()
                assert client.get("/").text == "hello"
                took.append(time.monotonic() - started)
        # With Nagle every one of them takes >= 40 ms; the fastest shows it is gone.
        assert min(took) < 0.030, f"kept-alive requests took {[round(t * 1000) for t in took]} ms"
    finally:
        server.should_exit = True
        thread.join(10)
