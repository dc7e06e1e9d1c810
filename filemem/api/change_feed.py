"""ChangeFeed: the agent long-polls waiting in this process, per host, woken when a host changes.

A wake-up only says "look now": the waiter re-reads the host's change cursor from the
database, which stays the truth. Wakers may run in any thread (the committing thread of a
threadpool handler, the PostgreSQL listener); waiters live on an asyncio loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import AsyncIterator, Iterable, Iterator

from starlette.requests import Request


def recheck_delay(interval: float) -> float:
    """When a waiter re-reads the database without a notice: somewhere in [interval / 2,
    interval], so waiters that began together (every agent reconnecting after an API restart)
    spread their re-reads instead of all reading at once."""
    return interval * random.uniform(0.5, 1.0)  # noqa: S311 - spreading load, not a secret


class Waiter:
    """One waiting long-poll of one host. arm() before reading the database, then wait():
    a wake-up between the two is not lost."""

    def __init__(self, host: str, loop: asyncio.AbstractEventLoop) -> None:
        self.host = host
        self.loop = loop
        self.closed = False
        self._event = asyncio.Event()

    def arm(self) -> None:
        self._event.clear()

    async def wait(self, timeout: float) -> bool:
        """True when woken (or closed) within `timeout` seconds, False when it ran out."""
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            # A loop that ran late may fire the timeout after the wake already landed.
            return self._event.is_set()
        return True

    def close(self) -> None:
        """The client went away: wake the waiter for good (call on its loop)."""
        self.closed = True
        self._event.set()

    def _wake(self) -> None:
        self._event.set()


def _wake_all(waiters: list[Waiter]) -> None:
    for waiter in waiters:
        waiter._wake()


class ChangeFeed:
    """Waiters by host; wake(hosts) and wake_all() may be called from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: dict[str, set[Waiter]] = {}

    @contextlib.contextmanager
    def subscribe(self, host: str) -> Iterator[Waiter]:
        """A waiter for `host` on the running loop, registered until the block ends."""
        waiter = Waiter(host, asyncio.get_running_loop())
        with self._lock:
            self._waiters.setdefault(host, set()).add(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                waiting = self._waiters.get(host)
                if waiting is not None:
                    waiting.discard(waiter)
                    if not waiting:
                        del self._waiters[host]

    def waiting(self, host: str | None = None) -> int:
        """How many waiters there are (of `host`, or of all hosts)."""
        with self._lock:
            if host is not None:
                return len(self._waiters.get(host, ()))
            return sum(len(waiters) for waiters in self._waiters.values())

    def wake(self, hosts: Iterable[str]) -> int:
        """Wake every waiter of `hosts`; how many were woken."""
        with self._lock:
            found = [w for host in set(hosts) for w in self._waiters.get(host, ())]
        return self._dispatch(found)

    def wake_all(self) -> int:
        """Wake every waiter (notices may have been lost, e.g. while the listener reconnected)."""
        with self._lock:
            found = [w for waiters in self._waiters.values() for w in waiters]
        return self._dispatch(found)

    @staticmethod
    def _dispatch(found: list[Waiter]) -> int:
        # One callback per loop, not per waiter: a wake-all of thousands stays one hop.
        by_loop: dict[asyncio.AbstractEventLoop, list[Waiter]] = {}
        for waiter in found:
            by_loop.setdefault(waiter.loop, []).append(waiter)
        for loop, waiters in by_loop.items():
            # A loop that already stopped has no one left to wake.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake_all, waiters)
        return len(found)


async def _close_on_disconnect(request: Request, waiter: Waiter) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            waiter.close()
            return


@contextlib.asynccontextmanager
async def closed_on_disconnect(request: Request, waiter: Waiter) -> AsyncIterator[Waiter]:
    """Close `waiter` as soon as the client of `request` disconnects (a request without a body
    to read: the only message left to receive is the disconnect)."""
    task = asyncio.create_task(_close_on_disconnect(request, waiter))
    try:
        yield waiter
    finally:
        task.cancel()
        # wait(), not `await task`: a cancellation of this request itself still propagates.
        await asyncio.wait([task])
