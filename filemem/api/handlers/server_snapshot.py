"""createImage and createBackup: a server's disk written by its host's agent to a new image,
and what happens to the image when the agent is done (nova's snapshot and backup rotation)."""

from __future__ import annotations

import uuid as uuidlib
from pathlib import Path
from typing import Any

from fastapi import Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from filemem.api import image_store
from filemem.api.context import ApiContext, get_context
from filemem.api.errors import Conflict
from filemem.api.handlers.instance_state import check_lock, record
from filemem.api.identity import get_caller
from filemem.api.links import base_url
from filemem.api.schemas import server_actions as schemas
from filemem.common import states
from filemem.conductor.instance_state import refusal
from filemem.db import api as db_api
from filemem.db import images as images_db
from filemem.db import instance_actions as actions_db
from filemem.db.models import Image, Instance

# nova's @check_instance_state for snapshot and backup.
SNAPSHOT_VM_STATES = (states.ACTIVE, states.STOPPED, states.PAUSED, states.SUSPENDED)


def create_image(request: Request, instance: Instance, value: Any) -> Response:
    body = schemas.parse(schemas.CreateImage, "createImage", value)
    properties = {"image_type": "snapshot"}
    image_id = _snapshot(request, instance, body.name, body.metadata, properties)
    return _answer(request, image_id)


def create_backup(request: Request, instance: Instance, value: Any) -> Response:
    body = schemas.parse(schemas.CreateBackup, "createBackup", value)
    properties = {
        "image_type": "backup",
        "backup_type": body.backup_type,
        "rotation": str(body.rotation),
    }
    image_id = _snapshot(request, instance, body.name, body.metadata, properties)
    return _answer(request, image_id)


def _answer(request: Request, image_id: str) -> Response:
    # Below 2.45 nova names the new image in the Location header, with an empty body.
    return Response(
        status_code=202, headers={"Location": f"{base_url(request)}/image/v2/images/{image_id}"}
    )


def _snapshot(
    request: Request,
    instance: Instance,
    name: str,
    metadata: dict[str, str] | None,
    properties: dict[str, str],
) -> str:
    """A queued private image of the instance's project, and the instance in image_snapshot
    with that image, in one transaction; 409 as nova when the state forbids it."""
    check_lock(request, instance)
    backup = properties["image_type"] == "backup"
    action = actions_db.CREATE_BACKUP if backup else actions_db.CREATE_IMAGE
    with get_context(request).database.session() as session:
        source = db_api.get_image(session, instance.image_id)
        if source is not None and source.kind != "disk":
            raise Conflict(
                f"Cannot '{action}' instance {instance.uuid}: it boots a kernel image and has "
                "no disk to snapshot"
            )
        image_id = str(uuidlib.uuid4())
        updated = db_api.update_instance(
            session,
            instance.uuid,
            {"task_state": states.IMAGE_SNAPSHOT, "snapshot_image_id": image_id},
            expect_vm_states=SNAPSHOT_VM_STATES,
            expect_task_states=[None],
            expect_not_deleting=True,
            expect_host=True,
        )
        if updated is None:
            current = db_api.get_instance(session, instance.uuid, fresh=True)
            raise Conflict(refusal(action, instance.uuid, current, SNAPSHOT_VM_STATES))
        db_api.create_image(
            session, _image_values(request, instance, image_id, name, metadata, properties)
        )
        record(session, request, updated, action)
    return image_id


def _image_values(
    request: Request,
    instance: Instance,
    image_id: str,
    name: str,
    metadata: dict[str, str] | None,
    properties: dict[str, str],
) -> dict[str, Any]:
    return {
        "id": image_id,
        "name": name,
        "kind": "disk",
        "source": "upload",
        "status": "queued",
        "owner": instance.project_id,
        "visibility": "private",
        "disk_format": "qcow2",
        "container_format": "bare",
        "min_ram": instance.memory_mb,
        "properties": {
            **(metadata or {}),
            **properties,
            "instance_uuid": instance.uuid,
            "base_image_ref": instance.image_id,
            "user_id": get_caller(request).user_id or instance.user_id,
            "owner_project_name": instance.project_id,
        },
    }


def remove_stored(ctx: ApiContext, image_ids: list[str]) -> None:
    """The stored bytes of images deleted by `finish`, once their rows are gone."""
    if ctx.image_store_dir is None:
        return
    for image_id in image_ids:
        image_store.remove(Path(ctx.image_store_dir), image_id)


def finish(session: Session, instance: Instance, image_id: str | None) -> list[str]:
    """The agent ended the snapshot task: a snapshot that did not become active is deleted
    (nova's), a backup rotates the older ones away. The image ids whose stored bytes the caller
    removes after the transaction."""
    db_api.update_instance(session, instance.uuid, {"snapshot_image_id": None}, notify=False)
    image = db_api.get_image(session, image_id) if image_id else None
    if image is None:
        return []
    if image.status != "active":
        images_db.delete_image(session, image.id)
        return [image.id]
    props = image.properties or {}
    if props.get("image_type") != "backup":
        return []
    return _rotate(session, instance.uuid, props.get("backup_type", ""), int(props["rotation"]))


def _rotate(session: Session, instance_uuid: str, backup_type: str, rotation: int) -> list[str]:
    """nova's _rotate_backups: keep the newest `rotation` backups of this type of the server."""
    candidates = session.scalars(
        select(Image).where(Image.status == "active").order_by(Image.created_at.desc(), Image.id)
    ).all()
    backups = [
        i
        for i in candidates
        if (i.properties or {}).get("image_type") == "backup"
        and (i.properties or {}).get("instance_uuid") == instance_uuid
        and (i.properties or {}).get("backup_type") == backup_type
    ]
    doomed = backups[rotation:]
    for image in doomed:
        images_db.delete_image(session, image.id)
    return [i.id for i in doomed]
