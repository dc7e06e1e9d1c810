"""A single-threaded wsgiref server for the Placement app that stops cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterable
from types import FrameType
from typing import Any
from wsgiref import simple_server

LOG = logging.getLogger(__name__)

WSGIApp = Callable[..., Any]


class _QuietHandler(simple_server.WSGIRequestHandler):
    """Access lines go to logging (INFO) instead of raw stderr."""

    def log_message(self, format: str, *args: Any) -> None:
        LOG.info("%s %s", self.address_string(), format % args)


class _Server(simple_server.WSGIServer):
    # Quick restarts must not fail with "address already in use" while old sockets linger.
    allow_reuse_address = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_server(app: WSGIApp, host: str, port: int) -> simple_server.WSGIServer:
    """Bind now (port 0 picks a free port); serves one request at a time, in one thread."""
    server_class = _Server6 if ":" in host else _Server
    return simple_server.make_server(
        host, port, app, server_class=server_class, handler_class=_QuietHandler
    )


def server_url(server: simple_server.WSGIServer) -> str:
    host, port = server.server_address[:2]
    host_text = host.decode() if isinstance(host, bytes) else str(host)
    if ":" in host_text:
        host_text = f"[{host_text}]"
    return f"http://{host_text}:{port}"


def serve_until_signalled(
    server: simple_server.WSGIServer,
    on_ready: Callable[[str], None],
    signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> None:
    """Serve until one of `signals`; the request in flight finishes, then the socket closes.

    Serving runs in a helper thread so the main thread, where Python delivers signals, can
    call shutdown() (which blocks until serve_forever returns and would deadlock if called
    from inside it).
    """
    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        LOG.info("signal %d received, stopping", signum)
        stop.set()

    previous = {sig: signal.signal(sig, _on_signal) for sig in signals}
    worker = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.2},
        name="placement-wsgi",
        daemon=True,
    )
    worker.start()
    try:
        on_ready(server_url(server))
        while not stop.wait(0.5):
            if not worker.is_alive():
                break
    finally:
        server.shutdown()
        server.server_close()
        worker.join(timeout=10)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
