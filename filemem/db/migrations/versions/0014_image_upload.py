"""images: glance's status, owner, visibility, size and hashes, for images uploaded to the API."""

# Revision ID: 0014
# Revises: 0013
# Create Date: 2026-12-07

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | Sequence[str] | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    # Images registered before are what they were: by path, active and public.
    ("source", sa.String(16), {"server_default": "path", "nullable": False}),
    ("status", sa.String(16), {"server_default": "active", "nullable": False}),
    ("owner", sa.String(255), {"nullable": True}),
    ("visibility", sa.String(16), {"server_default": "public", "nullable": False}),
    ("protected", sa.Boolean(), {"server_default": sa.false(), "nullable": False}),
    ("container_format", sa.String(16), {"nullable": True}),
    ("size", sa.BigInteger(), {"nullable": True}),
    ("virtual_size", sa.BigInteger(), {"nullable": True}),
    ("checksum", sa.String(32), {"nullable": True}),
    ("os_hash_algo", sa.String(64), {"nullable": True}),
    ("os_hash_value", sa.String(128), {"nullable": True}),
    ("min_disk", sa.Integer(), {"server_default": "0", "nullable": False}),
    ("min_ram", sa.Integer(), {"server_default": "0", "nullable": False}),
    ("updated_at", sa.DateTime(), {"nullable": True}),
)


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:
        for name, kind, options in COLUMNS:
            batch.add_column(sa.Column(name, kind, **options))


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        for name, _kind, _options in reversed(COLUMNS):
            batch.drop_column(name)
