"""Host aggregates (hosts, metadata) instances.availability_zone and requested_host."""

# Revision ID: 0005
# Revises: 0004
# Create Date: 2026-12-04

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 255
UUID = 36


def upgrade() -> None:
    op.create_table(
        "aggregates",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.String(UUID), nullable=False, unique=True),
        sa.Column("name", sa.String(NAME), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "aggregate_hosts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(NAME), nullable=False),
        sa.Column(
            "aggregate_id",
            sa.Integer(),
            sa.ForeignKey("aggregates.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.UniqueConstraint("host", "aggregate_id", name="uniq_aggregate_hosts0host0aggregate_id"),
    )
    op.create_table(
        "aggregate_metadata",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "aggregate_id",
            sa.Integer(),
            sa.ForeignKey("aggregates.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("key", sa.String(NAME), nullable=False),
        sa.Column("value", sa.String(NAME), nullable=False),
        sa.UniqueConstraint("aggregate_id", "key", name="uniq_aggregate_metadata0aggregate_id0key"),
    )
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("availability_zone", sa.String(NAME), nullable=True))
        batch.add_column(sa.Column("requested_host", sa.String(NAME), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("requested_host")
        batch.drop_column("availability_zone")
    op.drop_table("aggregate_metadata")
    op.drop_table("aggregate_hosts")
    op.drop_table("aggregates")
