"""Count an engine's SQL statements into a file named by FILEMEM_QUERY_COUNT_FILE (benchmarks)."""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, event
from sqlalchemy.engine import URL

ENV = "FILEMEM_QUERY_COUNT_FILE"
WRITE_EVERY_S = 0.2


class QueryCounter:
    """Counts every statement sent to the database (before_cursor_execute) and rewrites
    `path` with the total every WRITE_EVERY_S seconds, so another process can read it."""

    def __init__(self, engine: Engine | type[Engine], path: Path, url: URL | None = None) -> None:
        self.path = path
        self.url = url
        self.count = 0
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._counted)
        self._thread = threading.Thread(target=self._write_forever, name="query-count", daemon=True)
        self._thread.start()

    def _counted(self, conn: Connection, *_args: Any) -> None:
        if self.url is not None and conn.engine.url != self.url:
            return
        with self._lock:
            self.count += 1

    def _write_forever(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        while True:
            tmp.write_text(f"{self.count}\n")
            os.replace(tmp, self.path)
            threading.Event().wait(WRITE_EVERY_S)


def install_from_env(
    engine: Engine | type[Engine],
    environ: Mapping[str, str] = os.environ,
    url: URL | None = None,
) -> QueryCounter | None:
    """A QueryCounter for `engine` (or every Engine, of `url` only if given) when the
    environment names a file, else None."""
    path = environ.get(ENV)
    return QueryCounter(engine, Path(path), url) if path else None


def read(path: Path) -> int:
    """The last total a QueryCounter wrote to `path`."""
    return int(path.read_text().strip() or 0)
