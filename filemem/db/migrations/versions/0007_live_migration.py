"""Live migration: the agent's capabilities, version, migration address and free store room on
services; a live migration's reason, block_migration, dest_prepared, force_complete and abort
request on migrations."""

# Revision ID: 0007
# Revises: 0006
# Create Date: 2026-12-03

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FLAGS = ("block_migration", "dest_prepared", "force_complete", "abort_requested")


def upgrade() -> None:
    with op.batch_alter_table("services") as batch:
        batch.add_column(sa.Column("capabilities", sa.JSON(), nullable=True))
        batch.add_column(sa.Column("version", sa.String(255), nullable=True))
        batch.add_column(sa.Column("migration_address", sa.String(255), nullable=True))
        batch.add_column(sa.Column("store_free_mb", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("migrations") as batch:
        batch.add_column(sa.Column("reason", sa.Text(), nullable=True))
        for name in FLAGS:
            batch.add_column(
                sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false())
            )


def downgrade() -> None:
    with op.batch_alter_table("migrations") as batch:
        for name in reversed(FLAGS):
            batch.drop_column(name)
        batch.drop_column("reason")
    with op.batch_alter_table("services") as batch:
        for name in ("store_free_mb", "migration_address", "version", "capabilities"):
            batch.drop_column(name)
