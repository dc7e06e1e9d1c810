"""Compute API day-2 tables: server fields, key pairs, instance actions + events, migrations."""

# Revision ID: 0003
# Revises: 0002
# Create Date: 2026-12-02

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 255
UUID = 36


def _instance_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("locked_by", sa.String(16), nullable=True),
        sa.Column("locked_reason", sa.Text(), nullable=True),
        sa.Column("key_name", sa.String(NAME), nullable=True),
        sa.Column("reservation_id", sa.String(NAME), nullable=True),
        sa.Column("launch_index", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("tags", sa.JSON(), nullable=True),
        sa.Column("old_flavor", sa.JSON(), nullable=True),
        sa.Column("crash_dump_requested", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("console_requested_at", sa.DateTime(), nullable=True),
        sa.Column("console_output", sa.Text(), nullable=True),
        sa.Column("console_output_at", sa.DateTime(), nullable=True),
    ]


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        for column in _instance_columns():
            batch.add_column(column)
    op.create_table(
        "key_pairs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.Column("user_id", sa.String(NAME), nullable=False),
        sa.Column("fingerprint", sa.String(NAME), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("user_id", "name", name="uniq_key_pairs0user_id0name"),
    )
    op.create_table(
        "instance_actions",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("action", sa.String(NAME), nullable=False),
        sa.Column("instance_uuid", sa.String(UUID), nullable=False),
        sa.Column("request_id", sa.String(NAME), nullable=False),
        sa.Column("project_id", sa.String(NAME), nullable=False),
        sa.Column("user_id", sa.String(NAME), nullable=False),
        sa.Column("message", sa.Text(), nullable=True),
        sa.Column("start_time", sa.DateTime(), nullable=False),
        sa.Column("finish_time", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
    )
    op.create_index("instance_actions_instance_uuid_idx", "instance_actions", ["instance_uuid"])
    op.create_table(
        "instance_actions_events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "action_id",
            sa.Integer(),
            sa.ForeignKey("instance_actions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("event", sa.String(NAME), nullable=False),
        sa.Column("result", sa.String(NAME), nullable=True),
        sa.Column("traceback", sa.Text(), nullable=True),
        sa.Column("host", sa.String(NAME), nullable=True),
        sa.Column("start_time", sa.DateTime(), nullable=False),
        sa.Column("finish_time", sa.DateTime(), nullable=True),
    )
    op.create_table(
        "migrations",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("uuid", sa.String(UUID), nullable=False),
        sa.Column("instance_uuid", sa.String(UUID), nullable=False),
        sa.Column("migration_type", sa.String(32), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("source_compute", sa.String(NAME), nullable=True),
        sa.Column("dest_compute", sa.String(NAME), nullable=True),
        sa.Column("old_flavor_id", sa.String(NAME), nullable=True),
        sa.Column("new_flavor_id", sa.String(NAME), nullable=True),
        sa.Column("project_id", sa.String(NAME), nullable=False),
        sa.Column("user_id", sa.String(NAME), nullable=False),
        sa.Column("memory_total_bytes", sa.BigInteger(), nullable=True),
        sa.Column("memory_processed_bytes", sa.BigInteger(), nullable=True),
        sa.Column("memory_remaining_bytes", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("uuid"),
    )
    op.create_index("migrations_instance_uuid_idx", "migrations", ["instance_uuid"])


def downgrade() -> None:
    op.drop_table("migrations")
    op.drop_table("instance_actions_events")
    op.drop_table("instance_actions")
    op.drop_table("key_pairs")
    with op.batch_alter_table("instances") as batch:
        for column in reversed(_instance_columns()):
            batch.drop_column(column.name)
