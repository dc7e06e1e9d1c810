"""The servers list's SQL (filemem.db.instance_list) on a real PostgreSQL: the same checks as
on SQLite (tests/unit/test_instance_list.py), since tags use each database's JSON functions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from filemem.db import migrate
from tests.functional.postgres import PostgresCluster
from tests.unit.test_instance_list import (
    test_a_hint_never_drops_a_match,
    test_a_name_scan_reads_past_a_chunk,
    test_pages_follow_nova_order_across_ties,
    test_status_in_sql_is_status_of,
    test_tags_in_sql_are_tag_filter_matches,
)

__all__ = [
    "test_a_hint_never_drops_a_match",
    "test_a_name_scan_reads_past_a_chunk",
    "test_pages_follow_nova_order_across_ties",
    "test_status_in_sql_is_status_of",
    "test_tags_in_sql_are_tag_filter_matches",
]


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    with PostgresCluster() as url:
        migrate.upgrade(url)
        yield url


@pytest.fixture
def session(postgres: str) -> Iterator[Session]:
    """A session on the migrated schema whose rows are rolled back after each test."""
    engine = create_engine(postgres)
    with Session(engine) as db:
        assert db.get_bind().dialect.name == "postgresql"
        yield db
        db.rollback()
        assert db.execute(text("SELECT count(*) FROM instances")).scalar() == 0
    engine.dispose()
