"""flavor_projects (access to private flavors) and quotas (per-project limits), as nova's."""

# Revision ID: 0009
# Revises: 0006
# Create Date: 2026-12-03

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "flavor_projects",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "flavor_id",
            sa.Integer(),
            sa.ForeignKey("flavors.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.UniqueConstraint("flavor_id", "project_id", name="uniq_flavor_project"),
    )
    op.create_table(
        "quotas",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("resource", sa.String(255), nullable=False),
        sa.Column("hard_limit", sa.Integer(), nullable=False),
        sa.UniqueConstraint("project_id", "resource", name="uniq_quota_project"),
    )


def downgrade() -> None:
    op.drop_table("quotas")
    op.drop_table("flavor_projects")
