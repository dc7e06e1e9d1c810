"""Images uploaded to the API: status transitions, updates, deletion, who may download."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import delete, exists, or_, select, update
from sqlalchemy.orm import Session

from filemem.common import states
from filemem.db import server_migrations as migrations_db
from filemem.db.models import Image, Instance, Migration, utcnow


def transition(
    session: Session, image_id: str, from_statuses: Collection[str], values: Mapping[str, Any]
) -> bool:
    """Set `values` (a new status among them) only if the image is still in one of
    `from_statuses`: one conditional UPDATE, so two uploads of one image cannot both start."""
    result = session.execute(
        update(Image)
        .where(Image.id == image_id, Image.status.in_(list(from_statuses)))
        .values(**values, updated_at=utcnow())
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def update_image(session: Session, image: Image, values: Mapping[str, Any]) -> Image:
    for key, value in values.items():
        setattr(image, key, value)
    image.updated_at = utcnow()
    session.flush()
    return image


def delete_image(session: Session, image_id: str) -> None:
    session.execute(delete(Image).where(Image.id == image_id))


def snapshot_on_host(session: Session, image_id: str, host: str) -> bool:
    """Whether an instance on `host` is writing its snapshot to the image (createImage,
    createBackup): what lets that host's credential upload its data."""
    query = select(
        exists().where(
            Instance.snapshot_image_id == image_id,
            Instance.host == host,
            Instance.task_state == states.IMAGE_SNAPSHOT,
        )
    )
    return bool(session.scalar(query))


def used_on_host(session: Session, image_id: str, host: str) -> bool:
    """Whether an instance on `host`, or one moving to or from it, boots from the image: what
    lets that host's credential download it."""
    moving = select(Migration.instance_uuid).where(
        Migration.status.in_(migrations_db.IN_PROGRESS),
        or_(Migration.source_compute == host, Migration.dest_compute == host),
    )
    query = select(
        exists().where(
            Instance.image_id == image_id,
            or_(Instance.host == host, Instance.uuid.in_(moving)),
        )
    )
    return bool(session.scalar(query))
