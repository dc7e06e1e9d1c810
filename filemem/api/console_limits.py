"""Bounds on the console-output requests of one API process that wait for agents."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from filemem.api.errors import TooManyRequests

# [api] max_console_requests_per_server and max_console_requests: an agent answers a
# console request within seconds, so more waiting than this is a client flooding the API.
PER_SERVER = 4
TOTAL = 32


class ConsoleLimits:
    """Slots for waiting console requests, per server and in all; a request over either bound
    is refused at once (429) instead of queueing behind the ones already waiting."""

    def __init__(self, per_server: int = PER_SERVER, total: int = TOTAL) -> None:
        self.per_server = per_server
        self.total = total
        # Slots are taken on the event loop, but a lock costs nothing and keeps them right
        # for any caller.
        self._lock = threading.Lock()
        self._by_server: dict[str, int] = {}

    def waiting(self, server_id: str | None = None) -> int:
        """How many console requests hold a slot (of `server_id`, or in all)."""
        with self._lock:
            if server_id is not None:
                return self._by_server.get(server_id, 0)
            return sum(self._by_server.values())

    @contextlib.contextmanager
    def slot(self, server_id: str) -> Iterator[None]:
        """Hold one slot for `server_id` during the block; TooManyRequests when none is free."""
        self._take(server_id)
        try:
            yield
        finally:
            self._give_back(server_id)

    def _take(self, server_id: str) -> None:
        with self._lock:
            if sum(self._by_server.values()) >= self.total:
                raise TooManyRequests(
                    f"Too many console requests: {self.total} are already waiting for agents "
                    "in this API process ([api] max_console_requests); try again later"
                )
            held = self._by_server.get(server_id, 0)
            if held >= self.per_server:
                raise TooManyRequests(
                    f"Too many console requests for server {server_id}: {held} are already "
                    "waiting for its host's agent ([api] max_console_requests_per_server); "
                    "try again later"
                )
            self._by_server[server_id] = held + 1

    def _give_back(self, server_id: str) -> None:
        with self._lock:
            held = self._by_server[server_id] - 1
            if held:
                self._by_server[server_id] = held
            else:
                del self._by_server[server_id]
