"""kill -9 of filemem-api in the middle of POST /servers, at its worst moment: the claim is in
Placement, the row still scheduling. Once an API runs again the server ends in ERROR with a
fault, its claim is released, and the quota counts exactly the rows there are.

The moment is made deterministic by a proxy in front of the real Placement that forwards the
claim (PUT /allocations/{uuid}) and then withholds the answer: the API is killed while it waits.
"""

from __future__ import annotations

import re
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.functional.api_fixtures import (
    ApiEnv,
    ApiProcess,
    api_conf,
    http_client,
    make_flavor,
    make_image,
    placement_client,
    register_host,
)
from tests.functional.placement_fixtures import StandalonePlacement
from tests.functional.postgres import PostgresCluster

CLAIM = re.compile(r"^/allocations/([0-9a-f-]{36})$")
HOP_HEADERS = {"host", "content-length", "connection", "transfer-encoding", "content-encoding"}


class HoldingProxy(ThreadingHTTPServer):
    """Forwards to Placement; while `hold` is set, a claim is made in Placement but its answer
    is withheld until `release` (the claimed consumer is in `consumer`), then given to the
    API if it is still there."""

    daemon_threads = True

    def __init__(self, target: str) -> None:
        super().__init__(("127.0.0.1", 0), _Forward)
        self.target = target
        self.hold, self.claimed, self.release = (
            threading.Event(),
            threading.Event(),
            threading.Event(),
        )
        self.consumer = ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Forward(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HoldingProxy

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
        answer = httpx.request(
            self.command, self.server.target + self.path, headers=headers, content=body
        )
        claim = CLAIM.match(self.path)
        if claim and self.command == "PUT" and self.server.hold.is_set():
            self.server.consumer = claim.group(1)
            self.server.claimed.set()
            self.server.release.wait(120)
        try:
            self.send_response(answer.status_code)
            for key, value in answer.headers.items():
                if key.lower() not in HOP_HEADERS:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)
        except OSError:
            self.close_connection = True  # the API was killed while it waited

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = _forward

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test's output is the API's log."""


@contextmanager
def holding_proxy(target: str) -> Iterator[HoldingProxy]:
    proxy = HoldingProxy(target)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.release.set()
        proxy.shutdown()
        proxy.server_close()


def _post_in_background(url: str, body: dict[str, Any]) -> threading.Thread:
    def post() -> None:
        try:
            with http_client(url) as http:
                http.post("/v2.1/servers", json=body)
        except httpx.HTTPError:
            pass  # the API is killed under it: no answer is the point

    thread = threading.Thread(target=post, daemon=True)
    thread.start()
    return thread


def _wait_for_error(http: httpx.Client, uuid: str, timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    server: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = http.get(f"/v2.1/servers/{uuid}")
        assert response.status_code == 200, response.text
        server = response.json()["server"]
        if server["status"] == "ERROR":
            return server
        time.sleep(0.25)
    raise AssertionError(f"server {uuid} still {server.get('status')} after {timeout} s")


def _usage(http: httpx.Client) -> tuple[int, int]:
    absolute = http.get("/v2.1/limits").json()["limits"]["absolute"]
    return absolute["totalInstancesUsed"], absolute["totalRAMUsed"]


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    with PostgresCluster() as url:
        yield url


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_kill_during_post_servers_ends_in_error_with_no_claim(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    database_url = request.getfixturevalue("postgres") if backend == "postgresql" else ""
    options = "build_timeout = 2\nbuild_cleanup_interval = 1\n"
    with (
        StandalonePlacement(tmp_path / "placement") as placement_url,
        holding_proxy(placement_url) as proxy,
    ):
        conf = api_conf(tmp_path / "api", proxy.url, database_url, api_options=options)
        first = ApiProcess(tmp_path / "api", conf)
        first.start()
        second = ApiProcess(tmp_path / "api", conf)
        try:
            env = _env(first, placement_url, tmp_path / "files")
            provider = register_host(env, "crash-host")
            flavor, image = make_flavor(env, "crash.small"), make_image(env, "crash-kernel")
            env.http.close()
            proxy.hold.set()
            body = {"server": {"name": "crashed", "flavorRef": flavor, "imageRef": image}}
            poster = _post_in_background(first.url, body)
            assert proxy.claimed.wait(60), "the API never claimed"
            first.stop(sig=signal.SIGKILL)
            poster.join(30)
            uuid = proxy.consumer
            # What the crash left: a claim in Placement for a row still scheduling.
            assert env.placement.get_allocations(uuid)[1], "the claim was made"
            proxy.hold.clear()
            proxy.release.set()

            second.start()
            with http_client(second.url) as http:
                server = _wait_for_error(http, uuid, timeout=30)
                assert server["OS-EXT-SRV-ATTR:host"] is None
                assert "Build interrupted" in server["fault"]["message"], server["fault"]
                assert server["fault"]["code"] == 500
                assert env.placement.get_allocations(uuid)[1] == {}
                assert env.placement.get_provider_allocations(provider) == {}
                # The ERROR server counts (as in nova) until it is deleted; then nothing does.
                assert _usage(http) == (1, 256)
                assert http.delete(f"/v2.1/servers/{uuid}").status_code == 204
                assert http.get(f"/v2.1/servers/{uuid}").status_code == 404
                assert _usage(http) == (0, 0)
                assert env.placement.get_provider_allocations(provider) == {}
        finally:
            second.stop()
            first.stop()


def test_a_starting_api_leaves_a_siblings_create_in_flight_alone(
    tmp_path: Path, postgres: str
) -> None:
    """Two API processes on one PostgreSQL: one is in the middle of a create (its claim's
    answer withheld) while the other starts and sweeps; the young build is not taken over,
    and the first finishes it onto the host."""
    options = "build_timeout = 60\nbuild_cleanup_interval = 1\n"
    with (
        StandalonePlacement(tmp_path / "placement") as placement_url,
        holding_proxy(placement_url) as proxy,
    ):
        conf = api_conf(tmp_path / "api", proxy.url, postgres, api_options=options)
        first = ApiProcess(tmp_path / "api", conf)
        first.start()
        second = ApiProcess(tmp_path / "api2", conf)
        try:
            env = _env(first, placement_url, tmp_path / "files")
            register_host(env, "sibling-host")
            flavor, image = make_flavor(env, "sib.small"), make_image(env, "sib-kernel")
            proxy.hold.set()
            body = {"server": {"name": "in-flight", "flavorRef": flavor, "imageRef": image}}
            poster = _post_in_background(first.url, body)
            assert proxy.claimed.wait(60), "the API never claimed"
            second.start()
            time.sleep(3)  # the second API sweeps at start and then every second
            with http_client(second.url) as http:
                shown = http.get(f"/v2.1/servers/{proxy.consumer}").json()["server"]
                assert (shown["status"], shown["OS-EXT-STS:task_state"]) == ("BUILD", "scheduling")
            proxy.hold.clear()
            proxy.release.set()
            poster.join(60)
            shown = env.compute("GET", f"/servers/{proxy.consumer}").json()["server"]
            assert shown["OS-EXT-SRV-ATTR:host"] == "sibling-host", shown
            assert shown["status"] == "BUILD" and not shown.get("fault")
            assert env.placement.get_allocations(proxy.consumer)[1]
            env.http.close()
        finally:
            second.stop()
            first.stop()


def _env(api: ApiProcess, placement_url: str, files: Path) -> ApiEnv:
    files.mkdir(exist_ok=True)
    http = http_client(api.url)
    return ApiEnv(api.url, placement_url, http, placement_client(placement_url), files, api)
