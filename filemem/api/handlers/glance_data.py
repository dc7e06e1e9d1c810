"""An image's data, as glance's PUT and GET /image/v2/images/{id}/file: uploads stream to the
API's image store (filemem.api.image_store) and downloads stream from it.

Status goes queued -> saving -> active; a failed or refused upload deletes what was written
and puts the image back to queued, so the client may try again (glance's behaviour for an
upload that did not finish)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any

from fastapi import Path as PathParam
from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from filemem.api import image_store
from filemem.api.context import ApiContext, get_context
from filemem.api.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound
from filemem.api.handlers import glance
from filemem.api.identity import Caller, get_caller
from filemem.common.images import ImageRefused
from filemem.db import api as db_api
from filemem.db import images as images_db
from filemem.db.models import Image

LOG = logging.getLogger(__name__)
ImageIdPath = Annotated[str, PathParam(max_length=255)]
# Writes go to disk in pieces of about this size: fewer thread hops than one per ASGI message.
WRITE_BATCH = 1024 * 1024
READ_CHUNK = 1024 * 1024


class TooLarge(ApiError):
    status = 413


def may_change(caller: Caller, image: Image) -> bool:
    """The admin, or a member of the image's owner project (the route's rule checked roles)."""
    return caller.is_admin or (image.owner is not None and image.owner == caller.project_id)


def store_dir(ctx: ApiContext) -> Path:
    if ctx.image_store_dir is None:
        raise Conflict("This filemem-api stores no images: it has no image store directory.")
    return Path(ctx.image_store_dir)


def _start(request: Request, image_id: str) -> Image:
    """The image, moved from queued to saving; the errors glance answers otherwise."""
    # A host credential got here only for its instance's snapshot (authorize_image_upload).
    image = _downloadable(request, image_id)
    if get_caller(request).kind != "host_credential" and not may_change(get_caller(request), image):
        raise Forbidden("You are not authorized to complete upload_image action.")
    if image.source != "upload":
        raise Conflict(f"Image {image.id} is registered by path: it takes no upload.")
    if image.disk_format not in ("qcow2", "raw") or image.container_format is None:
        raise BadRequest(
            "Properties disk_format, container_format must be set prior to saving data "
            "(disk_format qcow2 or raw, container_format bare)."
        )
    with get_context(request).database.session() as session:
        started = images_db.transition(session, image.id, ("queued",), {"status": "saving"})
    if not started:
        raise Conflict(f"Image status transition from {image.status} to saving is not allowed")
    return image


def _back_to_queued(ctx: ApiContext, image_id: str) -> None:
    with ctx.database.session() as session:
        images_db.transition(session, image_id, ("saving",), {"status": "queued"})


def _activate(ctx: ApiContext, image_id: str, stored: image_store.Stored) -> bool:
    values = {
        "status": "active",
        "size": stored.size,
        "virtual_size": stored.virtual_size,
        "checksum": stored.checksum,
        "os_hash_algo": image_store.HASH_ALGO,
        "os_hash_value": stored.os_hash_value,
    }
    with ctx.database.session() as session:
        return images_db.transition(session, image_id, ("saving",), values)


def _declared_too_large(request: Request, cap: int) -> bool:
    declared = request.headers.get("content-length", "")
    return declared.isascii() and declared.isdigit() and int(declared) > cap


async def upload_image_data(request: Request, image_id: ImageIdPath) -> Response:
    """PUT /image/v2/images/{image_id}/file: the body, streamed, is the image; 204."""
    ctx = get_context(request)
    cap = ctx.image_size_cap
    if _declared_too_large(request, cap):
        raise TooLarge(f"Image exceeds the storage quota: the limit is {cap} bytes.")
    directory = store_dir(ctx)
    image = await run_in_threadpool(_start, request, image_id)
    try:
        stored = await _receive(request, directory, image, cap)
    except BaseException:
        await run_in_threadpool(_back_to_queued, ctx, image.id)
        raise
    if not await run_in_threadpool(_activate, ctx, image.id, stored):
        # Deleted while it was uploading: nothing may keep its bytes.
        image_store.remove(directory, image.id)
        raise Conflict(f"Image {image.id} was deleted during the upload.")
    return Response(status_code=204)


async def _receive(request: Request, directory: Path, image: Image, cap: int) -> image_store.Stored:
    writer = await run_in_threadpool(image_store.Writer, directory, image.id, cap)
    try:
        batch = bytearray()
        async for chunk in request.stream():
            batch += chunk
            if len(batch) >= WRITE_BATCH:
                await run_in_threadpool(writer.write, bytes(batch))
                batch.clear()
        await run_in_threadpool(writer.write, bytes(batch))
        disk_format = image.disk_format or "raw"
        return await run_in_threadpool(writer.finish, disk_format)
    except image_store.ImageTooLarge as exc:
        await run_in_threadpool(writer.abort)
        raise TooLarge(str(exc)) from exc
    except image_store.StoreFull as exc:
        await run_in_threadpool(writer.abort)
        raise TooLarge(str(exc)) from exc
    except ImageRefused as exc:
        await run_in_threadpool(writer.abort)
        raise BadRequest(f"Image data is refused: {_without_path(str(exc), writer)}") from exc
    except BaseException:
        await run_in_threadpool(writer.abort)
        raise


def _without_path(message: str, writer: image_store.Writer) -> str:
    """The inspector's reason without the store's temporary path (no use to the client)."""
    return message.replace(str(writer.partial), "the image").removeprefix("the image: ")


def _chunks(source: IO[bytes]) -> Iterator[bytes]:
    with source:
        while chunk := source.read(READ_CHUNK):
            yield chunk


def _data_file(ctx: ApiContext, image: Image) -> Path | None:
    if image.source == "upload":
        return image_store.path_of(store_dir(ctx), image.id) if image.status == "active" else None
    # A disk registered by path is its file; a kernel boot has no single data file.
    return Path(image.disk_path) if image.kind == "disk" and image.disk_path else None


def _downloadable(request: Request, image_id: str) -> Image:
    """The image as its visibility shows it, or to a host credential (authorized already by
    the instances of its host) whatever the image's owner."""
    if get_caller(request).kind != "host_credential":
        return glance.find(request, image_id)
    with get_context(request).database.reader() as session:
        image = db_api.get_image(session, image_id)
    if image is None:
        raise NotFound(f"No image found with ID {image_id}")
    return image


def download_image_data(request: Request, image_id: ImageIdPath) -> Response:
    """GET /image/v2/images/{image_id}/file: the data, streamed, with glance's Content-MD5;
    204 when the image has none (queued, or a kernel boot). Host credentials pass only for
    an image an instance of their host boots from (agent_authz.authorize_image_download)."""
    ctx = get_context(request)
    image = _downloadable(request, image_id)
    path = _data_file(ctx, image)
    if path is None:
        return Response(status_code=204)
    try:
        source = open(path, "rb")  # noqa: SIM115 (closed by _chunks when the answer ends)
    except OSError as exc:
        LOG.error("image %s: its data cannot be read: %s", image.id, exc)
        raise NotFound(f"Image {image.id} has no readable data.") from exc
    headers: dict[str, Any] = {"Content-Length": str(os.fstat(source.fileno()).st_size)}
    if image.checksum:
        headers["Content-MD5"] = image.checksum
    return StreamingResponse(
        _chunks(source), media_type="application/octet-stream", headers=headers
    )
