"""Initial schema: services, flavors + extra specs, images, instances, changes."""

# Revision ID: 0001
# Revises:
# Create Date: 2025-01-01

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 255
UUID = 36
PATH = 4096


def _services() -> None:
    op.create_table(
        "services",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(NAME), nullable=False),
        sa.Column("binary", sa.String(NAME), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("disabled_reason", sa.String(NAME), nullable=True),
        sa.Column("provider_uuid", sa.String(UUID), nullable=True),
        sa.Column("file_backed", sa.Boolean(), nullable=False),
        sa.Column("file_backed_memory_mb", sa.Integer(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.UniqueConstraint("host"),
    )


def _flavors() -> None:
    op.create_table(
        "flavors",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("flavorid", sa.String(NAME), nullable=False),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("root_gb", sa.Integer(), nullable=False),
        sa.Column("is_public", sa.Boolean(), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("flavorid"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "flavor_extra_specs",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "flavor_id",
            sa.Integer(),
            sa.ForeignKey("flavors.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("key", sa.String(NAME), nullable=False),
        sa.Column("value", sa.String(NAME), nullable=False),
        sa.UniqueConstraint("flavor_id", "key", name="uniq_flavor_extra_specs0key"),
    )


def _images() -> None:
    op.create_table(
        "images",
        sa.Column("id", sa.String(UUID), primary_key=True),
        sa.Column("name", sa.String(NAME), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("kernel_path", sa.String(PATH), nullable=True),
        sa.Column("initrd_path", sa.String(PATH), nullable=True),
        sa.Column("cmdline", sa.Text(), nullable=False),
        sa.Column("disk_path", sa.String(PATH), nullable=True),
        sa.Column("disk_format", sa.String(16), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )


def _instances() -> None:
    op.create_table(
        "instances",
        sa.Column("uuid", sa.String(UUID), primary_key=True),
        sa.Column("display_name", sa.String(NAME), nullable=False),
        sa.Column("project_id", sa.String(NAME), nullable=False),
        sa.Column("user_id", sa.String(NAME), nullable=False),
        sa.Column("flavor_id", sa.String(NAME), nullable=False),
        sa.Column("flavor_name", sa.String(NAME), nullable=False),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("memory_mb", sa.Integer(), nullable=False),
        sa.Column("root_gb", sa.Integer(), nullable=False),
        sa.Column("extra_specs", sa.JSON(), nullable=False),
        sa.Column("image_id", sa.String(UUID), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("host", sa.String(NAME), nullable=True),
        sa.Column("vm_state", sa.String(NAME), nullable=False),
        sa.Column("task_state", sa.String(NAME), nullable=True),
        sa.Column("power_state", sa.Integer(), nullable=False),
        sa.Column("fault_message", sa.Text(), nullable=True),
        sa.Column("fault_code", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=True),
        sa.Column("launched_at", sa.DateTime(), nullable=True),
        sa.Column("deleted_requested", sa.Boolean(), nullable=False),
    )
    op.create_index("instances_host_idx", "instances", ["host"])


def _changes() -> None:
    op.create_table(
        "changes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("host", sa.String(NAME), nullable=False),
        sa.Column("instance_uuid", sa.String(UUID), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("changes_host_id_idx", "changes", ["host", "id"])


def upgrade() -> None:
    _services()
    _flavors()
    _images()
    _instances()
    _changes()


def downgrade() -> None:
    op.drop_table("changes")
    op.drop_table("instances")
    op.drop_table("images")
    op.drop_table("flavor_extra_specs")
    op.drop_table("flavors")
    op.drop_table("services")
