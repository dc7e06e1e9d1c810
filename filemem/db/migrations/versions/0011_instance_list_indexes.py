"""Indexes for the servers list's keyset pages: (created_at, uuid), per project and overall."""

# Revision ID: 0011
# Revises: 0010
# Create Date: 2026-12-07

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | Sequence[str] | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A page is the next `limit` rows in (created_at desc, uuid desc) after the marker: with
    # these the database walks an index from the marker instead of sorting every row.
    op.create_index("instances_created_at_uuid_idx", "instances", ["created_at", "uuid"])
    op.create_index(
        "instances_project_created_at_uuid_idx",
        "instances",
        ["project_id", "created_at", "uuid"],
    )


def downgrade() -> None:
    op.drop_index("instances_project_created_at_uuid_idx", table_name="instances")
    op.drop_index("instances_created_at_uuid_idx", table_name="instances")
