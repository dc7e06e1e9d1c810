"""FILEMEM_QUERY_COUNT_FILE: the statements an engine runs, counted and written for benchmarks."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import create_engine, text

from filemem.devtools import query_count


def test_nothing_is_counted_without_the_variable() -> None:
    engine = create_engine("sqlite://")
    assert query_count.install_from_env(engine, environ={}) is None


def test_every_statement_is_counted_and_written(tmp_path: Path) -> None:
    path = tmp_path / "queries"
    engine = create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    counter = query_count.install_from_env(engine, environ={query_count.ENV: str(path)})
    assert counter is not None
    with engine.connect() as conn:
        for _ in range(7):
            conn.execute(text("SELECT 1"))
    assert counter.count == 7
    deadline = time.monotonic() + 10
    while not path.exists() or query_count.read(path) != 7:
        assert time.monotonic() < deadline, "the count was not written"
        time.sleep(0.05)
