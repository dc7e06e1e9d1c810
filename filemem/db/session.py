"""Database(url): the engine, SQLite pragmas (WAL, foreign keys, busy timeout) and sessions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.orm import Session, sessionmaker

from filemem.common.private_files import private_sqlite
from filemem.db import change_events

# Long enough that a burst of concurrent API writers waits its turn instead of failing.
SQLITE_BUSY_TIMEOUT_MS = 30000
_IMMEDIATE = "filemem_sqlite_immediate"
# Enough connections for uvicorn's worker threads (40) without waiting on the pool.
POOL_SIZE = 10
MAX_OVERFLOW = 30


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Autocommit at the driver level, so the "begin" hook below decides how transactions start.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS:d}")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _sqlite_on_begin(conn: Connection) -> None:
    # A deferred transaction that reads and then writes cannot wait for another writer (SQLite
    # returns SQLITE_BUSY at once to avoid a deadlock); BEGIN IMMEDIATE takes the write lock
    # up front, where busy_timeout applies. Read-only sessions stay deferred so they never
    # block writers under WAL.
    immediate = conn.get_execution_options().get(_IMMEDIATE, True)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets WAL, foreign keys, a busy timeout, immediate writes."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        # Before SQLite creates it: its rows hold console output and host credentials' hashes.
        private_sqlite(url)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False},
            pool_size=POOL_SIZE,
            max_overflow=MAX_OVERFLOW,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=POOL_SIZE, max_overflow=MAX_OVERFLOW)


class Database:
    """One per process: the engine and a session factory.

    `session()` is a unit of work committed on success and rolled back on error;
    `reader()` is for read-only work (on SQLite it does not take the write lock).
    `on_changes(hook)`: after each commit that moved hosts' change cursors, `hook` gets those
    hosts (in the committing thread).
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.backend = self.engine.dialect.name
        self._writer = sessionmaker(bind=self.engine, expire_on_commit=False)
        self._change_hooks: list[change_events.ChangeHook] = []
        change_events.install(self._writer, self._change_hooks)
        reader_bind = self.engine.execution_options(**{_IMMEDIATE: False})
        self._reader = sessionmaker(bind=reader_bind, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._writer.begin() as session:
            yield session

    @contextmanager
    def reader(self) -> Iterator[Session]:
        # close() (on leaving the block) ends the transaction and detaches the objects without
        # expiring them, so what was read stays readable afterwards.
        with self._reader() as session:
            yield session

    def on_changes(self, hook: change_events.ChangeHook) -> None:
        self._change_hooks.append(hook)

    def dispose(self) -> None:
        self.engine.dispose()
