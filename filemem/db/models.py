"""SQLAlchemy 2 models of filemem-api's database (docs/control-plane.md, "Database")."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAME_LENGTH = 255
UUID_LENGTH = 36
PATH_LENGTH = 4096


def utcnow() -> dt.datetime:
    """Naive UTC, as stored: SQLite keeps no time zone, so every timestamp is UTC by rule."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Service(Base):
    """A compute agent's host; registered (and kept alive) by the agent itself."""

    __tablename__ = "services"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    binary: Mapped[str] = mapped_column(String(NAME_LENGTH))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    provider_uuid: Mapped[str | None] = mapped_column(String(UUID_LENGTH), nullable=True)
    file_backed: Mapped[bool] = mapped_column(Boolean, default=False)
    file_backed_memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class Flavor(Base):
    __tablename__ = "flavors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flavorid: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    root_gb: Mapped[int] = mapped_column(Integer, default=0)
    is_public: Mapped[bool] = mapped_column(Boolean, default=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)

    extra_specs: Mapped[list[FlavorExtraSpec]] = relationship(
        back_populates="flavor",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="FlavorExtraSpec.key",
        lazy="selectin",
    )

    def specs(self) -> dict[str, str]:
        return {spec.key: spec.value for spec in self.extra_specs}


class FlavorExtraSpec(Base):
    __tablename__ = "flavor_extra_specs"
    __table_args__ = (UniqueConstraint("flavor_id", "key", name="uniq_flavor_extra_specs0key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flavor_id: Mapped[int] = mapped_column(ForeignKey("flavors.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(NAME_LENGTH))
    value: Mapped[str] = mapped_column(String(NAME_LENGTH))

    flavor: Mapped[Flavor] = relationship(back_populates="extra_specs")


class Image(Base):
    """The local catalogue: a kernel (+initrd, cmdline) or a disk file, all on every host."""

    __tablename__ = "images"

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    kind: Mapped[str] = mapped_column(String(16))
    kernel_path: Mapped[str | None] = mapped_column(String(PATH_LENGTH), nullable=True)
    initrd_path: Mapped[str | None] = mapped_column(String(PATH_LENGTH), nullable=True)
    cmdline: Mapped[str] = mapped_column(Text, default="")
    disk_path: Mapped[str | None] = mapped_column(String(PATH_LENGTH), nullable=True)
    disk_format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class Instance(Base):
    """A server; it keeps a copy of its flavor because the flavor may be deleted meanwhile."""

    __tablename__ = "instances"
    __table_args__ = (Index("instances_host_idx", "host"),)

    uuid: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    project_id: Mapped[str] = mapped_column(String(NAME_LENGTH))
    user_id: Mapped[str] = mapped_column(String(NAME_LENGTH))
    flavor_id: Mapped[str] = mapped_column(String(NAME_LENGTH))
    flavor_name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    vcpus: Mapped[int] = mapped_column(Integer)
    memory_mb: Mapped[int] = mapped_column(Integer)
    root_gb: Mapped[int] = mapped_column(Integer)
    extra_specs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    image_id: Mapped[str] = mapped_column(String(UUID_LENGTH))
    metadata_: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    host: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    vm_state: Mapped[str] = mapped_column(String(NAME_LENGTH))
    task_state: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    power_state: Mapped[int] = mapped_column(Integer, default=0)
    fault_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    fault_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    launched_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # The working set the host's agent last reported (bytes in the store, in RAM, page-ins).
    memory_usage: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    deleted_requested: Mapped[bool] = mapped_column(Boolean, default=False)


class Change(Base):
    """One write an agent must see; an agent's long-poll cursor is the last id it saw."""

    __tablename__ = "changes"
    __table_args__ = (Index("changes_host_id_idx", "host", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(NAME_LENGTH))
    instance_uuid: Mapped[str] = mapped_column(String(UUID_LENGTH))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
