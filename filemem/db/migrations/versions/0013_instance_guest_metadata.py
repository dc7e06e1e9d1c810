"""What a guest learns about itself: user data, config drive, hostname, the key's public key."""

# Revision ID: 0013
# Revises: 0012
# Create Date: 2026-12-07

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.add_column(sa.Column("user_data", sa.Text(), nullable=True))
        batch.add_column(
            sa.Column("config_drive", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("hostname", sa.String(255), nullable=True))
        batch.add_column(sa.Column("key_data", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("key_data")
        batch.drop_column("hostname")
        batch.drop_column("config_drive")
        batch.drop_column("user_data")
