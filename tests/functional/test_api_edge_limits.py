"""The API's edge over real sockets: a chunked body over the limit is cut off at 413 without
growing the process; idle, half-sent and trickling connections are closed within the
configured timeouts; connections over [api] max_connections get 503."""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.functional.api_fixtures import TOKEN, ApiEnv, api_env

HEADER_TIMEOUT = 2.0
BODY_TIMEOUT = 2.0
KEEP_ALIVE = 2
MAX_CONNECTIONS = 20
# What a loaded machine may add to a timeout before the server acts on it.
SLACK = 3.0
LIMITS = (
    f"client_header_timeout = {HEADER_TIMEOUT}\nclient_body_timeout = {BODY_TIMEOUT}\n"
    f"keep_alive_timeout = {KEEP_ALIVE}\nmax_connections = {MAX_CONNECTIONS}\n"
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("api-edge"), api_options=LIMITS) as running:
        yield running


def connect(env: ApiEnv) -> socket.socket:
    address = urlsplit(env.url)
    assert address.hostname is not None and address.port is not None
    return socket.create_connection((address.hostname, address.port), timeout=10)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def closed_by_server(sock: socket.socket) -> bytes | None:
    """What the server sent before it closed, or None while it is still open."""
    readable, _, _ = select.select([sock], [], [], 0)
    if not readable:
        return None
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        return None
    return received or b"<closed>"


def send_chunked(sock: socket.socket, limit: int) -> tuple[int, bytes]:
    """Stream chunks of 64 KiB until the server answers or stops reading; (bytes sent, answer)."""
    chunk = b"%x\r\n%s\r\n" % (65536, b"x" * 65536)
    sent = 0
    sock.settimeout(5)
    while sent < limit:
        readable, _, _ = select.select([sock], [], [], 0)
        if readable:
            break
        try:
            sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            break
        sent += 65536
    try:
        answer = sock.recv(65536)
    except (ConnectionResetError, TimeoutError):
        answer = b""
    return sent, answer


def test_a_chunked_body_over_the_limit_is_413_and_the_process_does_not_grow(env: ApiEnv) -> None:
    assert env.api is not None
    before = rss_kib(env.api.pid)
    with connect(env) as sock:
        sock.sendall(
            b"POST /v2.1/servers HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\nX-Auth-Token: " + TOKEN.encode() + b"\r\n\r\n"
        )
        started = time.monotonic()
        sent, answer = send_chunked(sock, 64 * 1024 * 1024)
        elapsed = time.monotonic() - started
    grown = rss_kib(env.api.pid) - before
    # The server stops reading at 1 MiB; the kernels' socket buffers hold a few MiB more.
    assert sent < 16 * 1024 * 1024, f"the server read {sent} bytes without answering"
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:200]
    assert elapsed < 5, elapsed
    assert grown < 8 * 1024, f"the API grew by {grown} KiB"
    assert httpx.get(f"{env.url}/v2.1/", headers={"X-Auth-Token": TOKEN}).status_code == 200


def test_idle_half_sent_and_trickling_connections_are_closed_in_time(env: ApiEnv) -> None:
    idle = [connect(env) for _ in range(5)]
    heads = [connect(env) for _ in range(5)]
    for sock in heads:
        sock.sendall(b"GET /v2.1/ HTTP/1.1\r\nHost: api\r\n")
    bodies = [connect(env) for _ in range(3)]
    for sock in bodies:
        sock.sendall(
            b"POST /v2.1/flavors HTTP/1.1\r\nHost: api\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\nX-Auth-Token: " + TOKEN.encode() + b'\r\n\r\n{"fla'
        )
    kept_alive = connect(env)
    kept_alive.sendall(b"GET /v2.1/ HTTP/1.1\r\nHost: api\r\n\r\n")
    trickle = connect(env)
    everyone = [*idle, *heads, *bodies, kept_alive, trickle]
    answers: dict[socket.socket, bytes] = {}
    started = time.monotonic()
    while len(answers) < len(everyone) and time.monotonic() - started < 30:
        if trickle not in answers:
            # Slowloris: a byte of a header every 0.2 s, never the end of the head.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                trickle.send(b"X")
        for sock in everyone:
            if sock not in answers and (answer := closed_by_server(sock)) is not None:
                answers[sock] = answer
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    for sock in everyone:
        sock.close()
    assert len(answers) == len(everyone), f"{len(everyone) - len(answers)} still open after 30 s"
    assert elapsed < max(HEADER_TIMEOUT, BODY_TIMEOUT, KEEP_ALIVE) + SLACK, elapsed
    for sock in bodies:
        assert answers[sock].startswith(b"HTTP/1.1 408 "), answers[sock][:200]
    assert answers[kept_alive].startswith(b"HTTP/1.1 200 "), answers[kept_alive][:200]


def test_connections_over_the_limit_get_503_and_a_normal_get_works(env: ApiEnv) -> None:
    version = f"{env.url}/v2.1/"
    below = [connect(env) for _ in range(MAX_CONNECTIONS // 2)]
    for sock in below:
        sock.sendall(b"GET /v2.1/ HTTP/1.1\r\n")
    # Each connection costs little below the limit: a normal GET is served.
    assert httpx.get(version).status_code == 200
    over = [connect(env) for _ in range(MAX_CONNECTIONS)]
    for sock in over:
        sock.sendall(b"GET /v2.1/ HTTP/1.1\r\n")
    time.sleep(0.5)  # the server has accepted them all
    assert httpx.get(version).status_code == 503
    # Once the half-sent heads time out, the slots are free again.
    deadline = time.monotonic() + HEADER_TIMEOUT + SLACK
    status = 503
    while status == 503 and time.monotonic() < deadline:
        time.sleep(0.25)
        status = httpx.get(version).status_code
    for sock in [*below, *over]:
        sock.close()
    assert status == 200
