"""The uvicorn configuration filemem-api and `filemem up` both serve with: timeouts, limits.

uvicorn bounds idle kept-alive connections (timeout_keep_alive), connections at once
(limit_concurrency, then 503) and the size of a request head (h11_max_incomplete_event_size),
but nothing bounds the time to send a head: a connection that never sends one, or sends a byte
every few seconds, stays open for ever. HeadDeadlineProtocol adds that deadline.
"""

from __future__ import annotations

import asyncio
from typing import Any

import uvicorn
from oslo_config import cfg
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeadDeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection that has not sent a complete request
    head within `head_timeout` seconds of connecting or of its first byte after an answer."""

    head_timeout = 5.0
    _head_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._awaiting_head():
            # Armed once per head, never re-armed by more bytes: a trickle cannot extend it.
            if self._head_deadline is None:
                self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _awaiting_head(self) -> bool:
        # Between requests uvicorn keeps the last cycle, answered; a new head makes a new one.
        return self.cycle is None or self.cycle.response_complete

    def _arm(self) -> None:
        self._disarm()
        self._head_deadline = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _disarm(self) -> None:
        if self._head_deadline is not None:
            self._head_deadline.cancel()
            self._head_deadline = None

    def _head_timed_out(self) -> None:
        self._head_deadline = None
        if self._awaiting_head() and not self.transport.is_closing():
            self.transport.close()


def head_deadline_protocol(seconds: float) -> type[HeadDeadlineProtocol]:
    """The protocol class with this deadline (uvicorn builds one instance per connection)."""
    return type("HeadDeadlineProtocol", (HeadDeadlineProtocol,), {"head_timeout": seconds})


def server_config(app: Any, conf: cfg.ConfigOpts, **overrides: Any) -> uvicorn.Config:
    """The uvicorn Config of `app` with [api]'s timeouts and limits."""
    options: dict[str, Any] = {
        "log_level": "warning",
        "access_log": False,
        "lifespan": "on",
        "timeout_graceful_shutdown": 5,
        "http": head_deadline_protocol(conf.api.client_header_timeout),
        "timeout_keep_alive": conf.api.keep_alive_timeout,
        "limit_concurrency": conf.api.max_connections,
        "h11_max_incomplete_event_size": conf.api.max_header_bytes,
    }
    options.update(overrides)
    return uvicorn.Config(app, **options)
