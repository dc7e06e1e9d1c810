"""AgentApiClient with several filemem-api endpoints: an unreachable one is passed over."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from filemem.compute.agent_api import AgentApiClient, ApiUnavailable
from filemem.conf.compute import api_endpoints
from filemem.exceptions import ConfigError

PROVIDER = "0b6ad0b4-3a4c-4bd5-8f8a-4b3c1b9a1c11"


class _Handler(BaseHTTPRequestHandler):
    def do_PUT(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        service = {"id": 1, "host": "h1", "binary": "filemem-compute", "disabled": False}
        body = json.dumps({"service": service, "ram_allocation_ratio": 1.0})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def api_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def _closed_port_url() -> str:
    """A loopback port nobody listens on: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_single_url_form_unchanged(api_url: str) -> None:
    client = AgentApiClient(api_url + "/", "t")
    assert client.endpoint == api_url and client.endpoints == [api_url]
    assert client.register("h1", PROVIDER, 1024) == 1.0
    client.close()


def test_moves_on_to_the_next_endpoint_and_stays_there(api_url: str) -> None:
    dead = _closed_port_url()
    client = AgentApiClient(f"{dead}, {api_url}", "t")
    assert client.endpoint == dead
    assert client.register("h1", PROVIDER, 1024) == 1.0
    assert client.endpoint == api_url
    assert client.register("h1", PROVIDER, 1024) == 1.0  # straight to the live one
    client.close()


def test_all_unreachable_names_every_endpoint() -> None:
    first, second = _closed_port_url(), _closed_port_url()
    client = AgentApiClient(f"{first},{second}", "t")
    with pytest.raises(ApiUnavailable) as info:
        client.register("h1", PROVIDER, 1024)
    assert first in str(info.value) and second in str(info.value)
    client.close()


def test_api_endpoint_option_list_form() -> None:
    assert api_endpoints("") == []
    assert api_endpoints("http://a:1") == ["http://a:1"]
    assert api_endpoints(" http://a:1 , https://b:2 ") == ["http://a:1", "https://b:2"]
    for bad in ("a:1", "http://a:1,ftp://b", "http://"):
        with pytest.raises(ConfigError, match=r"\[DEFAULT\] api_endpoint"):
            api_endpoints(bad)
