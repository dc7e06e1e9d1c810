"""Schema migrations run from code: upgrade(url) to head, with no alembic.ini."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

from filemem.db.session import make_engine

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Any constant shared by every filemem-api: concurrent starts on one PostgreSQL migrate in turn.
_PG_MIGRATION_LOCK = 0x66696C656D656D


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def _upgrade_on(engine: Engine, revision: str) -> None:
    config = alembic_config()
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Held to the end of this transaction, which (PostgreSQL DDL being transactional)
            # also wraps the migrations: a second process waits, then finds nothing to do.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def upgrade(url: str, revision: str = "head") -> None:
    """Create or migrate the database at `url` to `revision` (idempotent)."""
    engine = make_engine(url)
    try:
        _upgrade_on(engine, revision)
    finally:
        engine.dispose()


def downgrade(url: str, revision: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.downgrade(config, revision)
    finally:
        engine.dispose()
