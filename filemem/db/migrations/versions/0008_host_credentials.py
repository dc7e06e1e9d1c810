"""host_credentials: per-host agent credentials (the sha256 of the secret, never the secret)."""

# Revision ID: 0008
# Revises: 0006
# Create Date: 2026-12-03

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "host_credentials",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
    )
    op.create_index(
        "host_credentials_secret_hash_idx", "host_credentials", ["secret_hash"], unique=True
    )
    op.create_index("host_credentials_host_idx", "host_credentials", ["host"])


def downgrade() -> None:
    op.drop_index("host_credentials_host_idx", table_name="host_credentials")
    op.drop_index("host_credentials_secret_hash_idx", table_name="host_credentials")
    op.drop_table("host_credentials")
