"""The ports table: each guest interface's network, MAC and fixed IP (the built-in network)."""

# Revision ID: 0012
# Revises: 0011
# Create Date: 2026-12-07

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ports",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("network_id", sa.String(36), nullable=False),
        sa.Column(
            "instance_uuid",
            sa.String(36),
            sa.ForeignKey("instances.uuid", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("mac_address", sa.String(32), nullable=False),
        sa.Column("ip_address", sa.String(64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        # The database, not the allocator, is what keeps two API processes from handing out
        # one address twice: the loser of a race gets an IntegrityError and tries the next.
        sa.UniqueConstraint("network_id", "ip_address", name="uniq_ports0network_id0ip_address"),
    )
    op.create_index("ports_instance_uuid_idx", "ports", ["instance_uuid"])


def downgrade() -> None:
    op.drop_index("ports_instance_uuid_idx", table_name="ports")
    op.drop_table("ports")
