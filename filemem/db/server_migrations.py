"""Rows of the migrations table (resizes now, live migrations later), as nova keeps them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from filemem.db.models import Instance, Migration, utcnow

RESIZE = "resize"
LIVE_MIGRATION = "live-migration"

# nova's statuses for a resize: migrating -> finished (VERIFY_RESIZE) -> confirmed | reverted.
MIGRATING = "migrating"
FINISHED = "finished"
CONFIRMED = "confirmed"
REVERTING = "reverting"
REVERTED = "reverted"
ERROR = "error"
# nova's statuses for a live migration: queued -> running -> completed | failed | cancelled
# (error: refused by the prechecks, recorded from 2.34).
QUEUED = "queued"
RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
LIVE_IN_PROGRESS = (QUEUED, RUNNING)
# A migration in these holds the source allocation under its own consumer.
IN_PROGRESS = (MIGRATING, FINISHED, REVERTING, *LIVE_IN_PROGRESS)


def create_migration(session: Session, values: Mapping[str, Any]) -> Migration:
    now = utcnow()
    row = Migration(created_at=now, updated_at=now, **values)
    session.add(row)
    session.flush()
    return row


def in_progress(session: Session, instance_uuid: str) -> Migration | None:
    """The instance's unfinished migration (at most one), or None."""
    query = (
        select(Migration)
        .where(Migration.instance_uuid == instance_uuid, Migration.status.in_(IN_PROGRESS))
        .order_by(Migration.id.desc())
    )
    return session.scalars(query).first()


def get_by_uuid(session: Session, migration_uuid: str) -> Migration | None:
    return session.scalars(select(Migration).where(Migration.uuid == migration_uuid)).first()


def live_in_progress_on(session: Session, host: str) -> list[Migration]:
    """Queued or running live migrations from or to `host`, oldest first."""
    query = (
        select(Migration)
        .where(
            Migration.migration_type == LIVE_MIGRATION,
            Migration.status.in_(LIVE_IN_PROGRESS),
            (Migration.source_compute == host) | (Migration.dest_compute == host),
        )
        .order_by(Migration.id)
    )
    return list(session.scalars(query))


def live_by_instance(session: Session, instance_uuids: Sequence[str]) -> dict[str, Migration]:
    """Instance uuid -> its queued or running live migration."""
    if not instance_uuids:
        return {}
    query = select(Migration).where(
        Migration.instance_uuid.in_(list(instance_uuids)),
        Migration.migration_type == LIVE_MIGRATION,
        Migration.status.in_(LIVE_IN_PROGRESS),
    )
    return {row.instance_uuid: row for row in session.scalars(query)}


def incoming_instances(session: Session, host: str) -> list[Instance]:
    """Instances being live-migrated to `host` (their host in the database is the source)."""
    query = select(Instance).where(
        Instance.uuid.in_(
            select(Migration.instance_uuid).where(
                Migration.migration_type == LIVE_MIGRATION,
                Migration.status.in_(LIVE_IN_PROGRESS),
                Migration.dest_compute == host,
            )
        ),
        Instance.host != host,
    )
    return list(session.scalars(query.order_by(Instance.created_at, Instance.uuid)))


def set_status(session: Session, migration: Migration, status: str) -> None:
    migration.status = status
    migration.updated_at = utcnow()
    session.flush()


def list_migrations(
    session: Session,
    *,
    instance_uuid: str | None = None,
    host: str | None = None,
    status: str | None = None,
    migration_type: str | None = None,
    statuses: Iterable[str] | None = None,
) -> list[Migration]:
    """Newest first, with nova's os-migrations filters (host matches source or destination)."""
    query = select(Migration)
    if instance_uuid is not None:
        query = query.where(Migration.instance_uuid == instance_uuid)
    if host is not None:
        query = query.where((Migration.source_compute == host) | (Migration.dest_compute == host))
    if status is not None:
        query = query.where(Migration.status == status)
    if statuses is not None:
        query = query.where(Migration.status.in_(list(statuses)))
    if migration_type is not None:
        query = query.where(Migration.migration_type == migration_type)
    return list(session.scalars(query.order_by(Migration.created_at.desc(), Migration.id.desc())))
