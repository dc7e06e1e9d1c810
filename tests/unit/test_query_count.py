"""FILEMEM_QUERY_COUNT_FILE: the statements an engine runs, counted and written for benchmarks."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text

from devtools import query_count


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


def test_a_counter_on_every_engine_counts_only_the_named_database(tmp_path: Path) -> None:
    """devtools.counted_api listens on the Engine class: an embedded Placement's engine, of
    another URL, must not be counted as filemem's statements."""
    path = tmp_path / "queries"
    ours = create_engine(f"sqlite:///{tmp_path / 'ours.sqlite'}")
    theirs = create_engine(f"sqlite:///{tmp_path / 'theirs.sqlite'}")
    counter = query_count.install_from_env(
        Engine, environ={query_count.ENV: str(path)}, url=ours.url
    )
    assert counter is not None
    try:
        with ours.connect() as conn:
            conn.execute(text("SELECT 1"))
        with theirs.connect() as conn:
            conn.execute(text("SELECT 1"))
            conn.execute(text("SELECT 2"))
        assert counter.count == 1
    finally:
        event.remove(Engine, "before_cursor_execute", counter._counted)
