"""services.provider_uuid unique: a resource provider belongs to one host."""

# Revision ID: 0010
# Revises: 0009
# Create Date: 2026-12-07

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    services = sa.table(
        "services",
        sa.column("id", sa.Integer()),
        sa.column("provider_uuid", sa.String(36)),
    )
    # Rows sharing a provider: the first registered (lowest id) keeps it, as the original
    # host; a later one is a clone or a takeover. Its provider is cleared, so the scheduler
    # stops sending guests there, and its agent's next registration is refused with a
    # message naming the owner (it still sends the shared uuid).
    first = (
        sa.select(sa.func.min(services.c.id))
        .where(services.c.provider_uuid.is_not(None))
        .group_by(services.c.provider_uuid)
    )
    op.execute(
        services.update()
        .where(services.c.provider_uuid.is_not(None), services.c.id.not_in(first))
        .values(provider_uuid=None)
    )
    op.create_index("services_provider_uuid_idx", "services", ["provider_uuid"], unique=True)


def downgrade() -> None:
    op.drop_index("services_provider_uuid_idx", table_name="services")
