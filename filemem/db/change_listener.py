"""ChangeListener: LISTEN for other API processes' change notices on PostgreSQL, in a thread."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg
from sqlalchemy import Engine

from filemem.db.change_events import CHANNEL

LOG = logging.getLogger(__name__)

# How often the thread looks up from waiting for notices to see whether it should stop.
STOP_CHECK_S = 0.5
BACKOFF_FIRST_S = 0.5
BACKOFF_MAX_S = 30.0


def next_backoff(delay: float) -> float:
    """The wait before the next reconnection attempt after one that waited `delay`."""
    return min(max(delay * 2, BACKOFF_FIRST_S), BACKOFF_MAX_S)


class ChangeListener:
    """One dedicated autocommit connection (psycopg 3, the engine's own connect arguments)
    with LISTEN filemem_changes; each notice's host goes to `on_hosts`. After every
    (re)connection `on_connected` runs: notices sent while it was away are lost, so waiters
    must look again. A dropped connection is logged and retried with exponential backoff."""

    def __init__(
        self,
        engine: Engine,
        on_hosts: Callable[[frozenset[str]], object],
        on_connected: Callable[[], object],
    ) -> None:
        cargs, cparams = engine.dialect.create_connect_args(engine.url)
        self._cargs = list(cargs)
        self._cparams = dict(cparams)
        self._on_hosts = on_hosts
        self._on_connected = on_connected
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()
        self.backend_pid: int | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="change-listener", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        delay = 0.0
        while not self._stop.is_set():
            try:
                with psycopg.connect(*self._cargs, **self._cparams, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.backend_pid = conn.info.backend_pid
                    if delay:
                        LOG.info("change listener reconnected to PostgreSQL")
                    delay = 0.0
                    self.connected.set()
                    self._on_connected()
                    self._receive(conn)
            except psycopg.Error as exc:
                self.connected.clear()
                delay = next_backoff(delay)
                LOG.warning(
                    "change listener lost its PostgreSQL connection (%s); agents' long-polls "
                    "fall back to re-reading the database; reconnecting in %.1f s",
                    str(exc).strip() or type(exc).__name__,
                    delay,
                )
                self._stop.wait(delay)
        self.connected.clear()

    def _receive(self, conn: psycopg.Connection[tuple[object, ...]]) -> None:
        while not self._stop.is_set():
            for notice in conn.notifies(timeout=STOP_CHECK_S):
                self._on_hosts(frozenset((notice.payload,)))
