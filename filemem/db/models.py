"""SQLAlchemy 2 models of filemem-api's database (docs/control-plane.md, "Database")."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAME_LENGTH = 255
UUID_LENGTH = 36
PATH_LENGTH = 4096
# Integer columns (the ids) are 32-bit on PostgreSQL, which refuses a larger value in a query
# (DataError) where SQLite finds no row: no row has an id beyond this.
MAX_INTEGER = 2**31 - 1


def utcnow() -> dt.datetime:
    """Naive UTC, as stored: SQLite keeps no time zone, so every timestamp is UTC by rule."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Service(Base):
    """A compute agent's host; registered (and kept alive) by the agent itself."""

    __tablename__ = "services"
    # A provider belongs to one host: a second host registering it is refused (hosts cloned
    # with the same compute_node_uuid, or a credential reaching for another host's capacity).
    __table_args__ = (Index("services_provider_uuid_idx", "provider_uuid", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    binary: Mapped[str] = mapped_column(String(NAME_LENGTH))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    # Set by an operator (os-services force-down): the host counts as down whatever it reports.
    forced_down: Mapped[bool] = mapped_column(Boolean, default=False)
    provider_uuid: Mapped[str | None] = mapped_column(String(UUID_LENGTH), nullable=True)
    file_backed: Mapped[bool] = mapped_column(Boolean, default=False)
    file_backed_memory_mb: Mapped[int] = mapped_column(Integer, default=0)
    # What the agent reports at each registration (live migration contract): its libvirt/QEMU
    # capabilities (None: an old agent that reports none), filemem's version, the address
    # other hosts migrate to, and the backing store's free room now (MiB, after headroom).
    capabilities: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    version: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    migration_address: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    store_free_mb: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class HostCredential(Base):
    """A compute agent's credential, bound to one host; only the secret's hash is stored."""

    __tablename__ = "host_credentials"
    __table_args__ = (
        Index("host_credentials_secret_hash_idx", "secret_hash", unique=True),
        Index("host_credentials_host_idx", "host"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(NAME_LENGTH))
    # sha256 hex of the secret: the secret is 32 random bytes, so no salt or slow hash is needed.
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


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
    # glance image properties nova reads (hw_mem_page_size); None for images registered before.
    properties: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # glance's fields (0014). "path": registered by path, read by hosts where it lies;
    # "upload": bytes stored by the API (filemem.api.image_store), downloaded by hosts.
    source: Mapped[str] = mapped_column(String(16), default="path", server_default="path")
    status: Mapped[str] = mapped_column(String(16), default="active", server_default="active")
    owner: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    visibility: Mapped[str] = mapped_column(String(16), default="public", server_default="public")
    protected: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    container_format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    virtual_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    checksum: Mapped[str | None] = mapped_column(String(32), nullable=True)
    os_hash_algo: Mapped[str | None] = mapped_column(String(64), nullable=True)
    os_hash_value: Mapped[str | None] = mapped_column(String(128), nullable=True)
    min_disk: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    min_ram: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    def property_value(self, key: str) -> str | None:
        """One glance image property, None when unset."""
        value = (self.properties or {}).get(key)
        return None if value is None else str(value)


class Instance(Base):
    """A server; it keeps a copy of its flavor because the flavor may be deleted meanwhile."""

    __tablename__ = "instances"
    __table_args__ = (
        Index("instances_host_idx", "host"),
        # The servers list's keyset pages (newest first), for a project and for all of them.
        Index("instances_created_at_uuid_idx", "created_at", "uuid"),
        Index("instances_project_created_at_uuid_idx", "project_id", "created_at", "uuid"),
    )

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
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    # nova's lock: None, or who locked it ("admin" or "owner") and why (2.9, 2.73).
    locked_by: Mapped[str | None] = mapped_column(String(16), nullable=True)
    locked_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    key_name: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    # Multi-create: the servers of one request share a reservation_id, each has its index.
    reservation_id: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    launch_index: Mapped[int] = mapped_column(Integer, default=0)
    tags: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # A resize waiting for confirm or revert keeps the flavor it came from (nova's old_flavor).
    old_flavor: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # Requests the host's agent answers and then clears (level-triggered, like task_state).
    crash_dump_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    console_requested_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    console_output: Mapped[str | None] = mapped_column(Text, nullable=True)
    console_output_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    # The zone asked for at create (nova's instances.availability_zone); None: any zone.
    availability_zone: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    # An admin's forced host ("zone:host", "zone::node"): the scheduler's only choice.
    requested_host: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    # What the guest learns about itself (config drive, metadata API), fixed at create as in
    # nova: the request's base64 user data, the hostname (sanitized display name), and the
    # key pair's public key (kept: the key pair may be deleted, the guest's key stays).
    user_data: Mapped[str | None] = mapped_column(Text, nullable=True)
    config_drive: Mapped[bool] = mapped_column(Boolean, default=False)
    hostname: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    key_data: Mapped[str | None] = mapped_column(Text, nullable=True)
    # While task_state is image_snapshot: the queued image the agent uploads the disk to (0016).
    snapshot_image_id: Mapped[str | None] = mapped_column(String(UUID_LENGTH), nullable=True)


class Change(Base):
    """One write an agent must see; an agent's long-poll cursor is the last id it saw."""

    __tablename__ = "changes"
    __table_args__ = (Index("changes_host_id_idx", "host", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(NAME_LENGTH))
    instance_uuid: Mapped[str] = mapped_column(String(UUID_LENGTH))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class KeyPair(Base):
    """An SSH or x509 public key of a user; a server booted with it gets it in its metadata."""

    __tablename__ = "key_pairs"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uniq_key_pairs0user_id0name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    user_id: Mapped[str] = mapped_column(String(NAME_LENGTH))
    fingerprint: Mapped[str] = mapped_column(String(NAME_LENGTH))
    public_key: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(16), default="ssh")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class InstanceAction(Base):
    """One user action on a server (os-instance-actions), kept after the server is deleted."""

    __tablename__ = "instance_actions"
    __table_args__ = (Index("instance_actions_instance_uuid_idx", "instance_uuid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(NAME_LENGTH))
    instance_uuid: Mapped[str] = mapped_column(String(UUID_LENGTH))
    request_id: Mapped[str] = mapped_column(String(NAME_LENGTH))
    project_id: Mapped[str] = mapped_column(String(NAME_LENGTH))
    user_id: Mapped[str] = mapped_column(String(NAME_LENGTH))
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    start_time: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    events: Mapped[list[InstanceActionEvent]] = relationship(
        back_populates="action",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="InstanceActionEvent.id",
        lazy="selectin",
    )


class InstanceActionEvent(Base):
    """A step of an action done by the API, the conductor or the host's agent."""

    __tablename__ = "instance_actions_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[int] = mapped_column(ForeignKey("instance_actions.id", ondelete="CASCADE"))
    event: Mapped[str] = mapped_column(String(NAME_LENGTH))
    result: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    traceback: Mapped[str | None] = mapped_column(Text, nullable=True)
    host: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    start_time: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    finish_time: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    action: Mapped[InstanceAction] = relationship(back_populates="events")


class Migration(Base):
    """A move of a server (resize now; live migration later), as nova's migrations table.

    Its uuid is the Placement consumer that holds the source allocation while it runs.
    """

    __tablename__ = "migrations"
    __table_args__ = (Index("migrations_instance_uuid_idx", "instance_uuid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(UUID_LENGTH), unique=True)
    instance_uuid: Mapped[str] = mapped_column(String(UUID_LENGTH))
    migration_type: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32))
    source_compute: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    dest_compute: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    old_flavor_id: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    new_flavor_id: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    project_id: Mapped[str] = mapped_column(String(NAME_LENGTH))
    user_id: Mapped[str] = mapped_column(String(NAME_LENGTH))
    memory_total_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    memory_processed_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    memory_remaining_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Live migration: why it failed or was cancelled, whether the destination agent is ready,
    # and the requests the source agent carries out (2.22 force_complete, 2.24 abort).
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    block_migration: Mapped[bool] = mapped_column(Boolean, default=False)
    dest_prepared: Mapped[bool] = mapped_column(Boolean, default=False)
    force_complete: Mapped[bool] = mapped_column(Boolean, default=False)
    abort_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class Aggregate(Base):
    """A host aggregate (nova's API-database aggregates); its uuid is a Placement aggregate."""

    __tablename__ = "aggregates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(UUID_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)

    hosts_: Mapped[list[AggregateHost]] = relationship(
        back_populates="aggregate",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="AggregateHost.id",
        lazy="selectin",
    )
    metadata_: Mapped[list[AggregateMetadata]] = relationship(
        back_populates="aggregate",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="AggregateMetadata.key",
        lazy="selectin",
    )

    @property
    def hosts(self) -> list[str]:
        return [row.host for row in self.hosts_]

    @property
    def metadata_dict(self) -> dict[str, str]:
        return {row.key: row.value for row in self.metadata_}

    @property
    def availability_zone(self) -> str | None:
        return self.metadata_dict.get("availability_zone")


class AggregateHost(Base):
    __tablename__ = "aggregate_hosts"
    __table_args__ = (
        UniqueConstraint("host", "aggregate_id", name="uniq_aggregate_hosts0host0aggregate_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    host: Mapped[str] = mapped_column(String(NAME_LENGTH))
    aggregate_id: Mapped[int] = mapped_column(ForeignKey("aggregates.id", ondelete="CASCADE"))

    aggregate: Mapped[Aggregate] = relationship(back_populates="hosts_")


class AggregateMetadata(Base):
    __tablename__ = "aggregate_metadata"
    __table_args__ = (
        UniqueConstraint("aggregate_id", "key", name="uniq_aggregate_metadata0aggregate_id0key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    aggregate_id: Mapped[int] = mapped_column(ForeignKey("aggregates.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(NAME_LENGTH))
    value: Mapped[str] = mapped_column(String(NAME_LENGTH))

    aggregate: Mapped[Aggregate] = relationship(back_populates="metadata_")


class FlavorProject(Base):
    """nova's flavor_projects: a project given access to a private flavor."""

    __tablename__ = "flavor_projects"
    __table_args__ = (UniqueConstraint("flavor_id", "project_id", name="uniq_flavor_project"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    flavor_id: Mapped[int] = mapped_column(ForeignKey("flavors.id", ondelete="CASCADE"))
    project_id: Mapped[str] = mapped_column(String(NAME_LENGTH))


class Quota(Base):
    """nova's quotas: a project's own limit of one resource (instances, cores, ram)."""

    __tablename__ = "quotas"
    __table_args__ = (UniqueConstraint("project_id", "resource", name="uniq_quota_project"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[str] = mapped_column(String(NAME_LENGTH))
    resource: Mapped[str] = mapped_column(String(NAME_LENGTH))
    hard_limit: Mapped[int] = mapped_column(Integer)


class Port(Base):
    """A guest's interface on a network (a port, in Neutron's words): its MAC and fixed IP.

    It belongs to the instance, not to a host: moves keep it, and it goes with the row. Two
    ports never share an address on one network, whichever API process allocates them.
    """

    __tablename__ = "ports"
    __table_args__ = (
        UniqueConstraint("network_id", "ip_address", name="uniq_ports0network_id0ip_address"),
        Index("ports_instance_uuid_idx", "instance_uuid"),
    )

    id: Mapped[str] = mapped_column(String(UUID_LENGTH), primary_key=True)
    network_id: Mapped[str] = mapped_column(String(UUID_LENGTH))
    instance_uuid: Mapped[str] = mapped_column(ForeignKey("instances.uuid", ondelete="CASCADE"))
    mac_address: Mapped[str] = mapped_column(String(32))
    ip_address: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
