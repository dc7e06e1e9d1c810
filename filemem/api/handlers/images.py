"""Images: the local catalogue in glance v2 shapes, and nova's image-proxy shape for /detail."""

from __future__ import annotations

import os
import stat
import uuid as uuidlib
from typing import Annotated, Any

from fastapi import Path, Query, Request

from filemem.api.context import get_context
from filemem.api.errors import BadRequest, NotFound
from filemem.api.links import base_url, bookmark, resource_links
from filemem.api.schemas.common import is_uuid
from filemem.api.schemas.images import ImageCreate
from filemem.db import api as db_api
from filemem.db.models import Image

ImageIdPath = Annotated[str, Path(max_length=255)]
MAX_IDS = 200


def _iso(value: Any) -> str:
    return f"{value.isoformat(timespec='seconds')}Z"


def view(request: Request, image: Image) -> dict[str, Any]:
    disk_format = image.disk_format if image.kind == "disk" else "aki"
    return {
        "id": image.id,
        "name": image.name,
        "status": "active",
        "visibility": "public",
        "protected": False,
        "container_format": "bare",
        "disk_format": disk_format,
        "min_disk": 0,
        "min_ram": 0,
        "size": None,
        "tags": [],
        "created_at": _iso(image.created_at),
        "updated_at": _iso(image.created_at),
        "self": f"/v2/images/{image.id}",
        "schema": "/v2/schemas/image",
        "links": bookmark(request, "images", image.id),
        "filemem_kind": image.kind,
        "kernel_path": image.kernel_path,
        "initrd_path": image.initrd_path,
        "cmdline": image.cmdline,
        "disk_path": image.disk_path,
    }


def _ids_filter(value: str | None) -> list[str] | None:
    """glance's id filter: a single id, or "in:<id1>,<id2>" (what `openstack server list` sends)."""
    if value is None:
        return None
    ids = value[3:].split(",") if value.startswith("in:") else [value]
    if len(ids) > MAX_IDS:
        raise BadRequest(f"at most {MAX_IDS} ids may be asked for at once")
    return [str(uuidlib.UUID(i)) for i in ids if is_uuid(i.strip())]


def list_images(
    request: Request,
    id: Annotated[str | None, Query(max_length=8192)] = None,
    name: Annotated[str | None, Query(max_length=255)] = None,
) -> dict[str, Any]:
    """GET /images[?id=in:<ids>][&name=<name>]."""
    ids = _ids_filter(id)
    with get_context(request).database.reader() as session:
        images = db_api.list_images(session, ids)
    if name is not None:
        images = [image for image in images if image.name == name]
    return {
        "images": [view(request, image) for image in images],
        "schema": "/v2/schemas/images",
        "first": "/v2/images",
    }


def _size(image: Image) -> int | None:
    """The disk file's size, or the kernel's for a kernel image; None if it cannot be read."""
    path = image.disk_path if image.kind == "disk" else image.kernel_path
    try:
        return os.stat(path).st_size if path else None
    except OSError:
        return None


def nova_view(request: Request, image: Image) -> dict[str, Any]:
    """nova's image-proxy shape (GET /v2.1/images/detail): glance's fields renamed, camelCase."""
    properties = {
        "filemem_kind": image.kind,
        "kernel_path": image.kernel_path,
        "initrd_path": image.initrd_path,
        "cmdline": image.cmdline,
        "disk_path": image.disk_path,
    }
    alternate = {
        "rel": "alternate",
        "type": "application/vnd.openstack.image",
        "href": f"{base_url(request)}/v2.1/images/{image.id}",
    }
    return {
        "id": image.id,
        "name": image.name,
        "status": "ACTIVE",
        "progress": 100,
        "minDisk": 0,
        "minRam": 0,
        # nova passes glance's properties through; all of filemem's are strings.
        "metadata": {key: value for key, value in properties.items() if value is not None},
        "created": _iso(image.created_at),
        "updated": _iso(image.created_at),
        "OS-EXT-IMG-SIZE:size": _size(image),
        "links": [*resource_links(request, "images", image.id), alternate],
    }


def list_images_detail(
    request: Request, name: Annotated[str | None, Query(max_length=255)] = None
) -> dict[str, Any]:
    """GET /images/detail[?name=]: nova's image list (what openstacksdk's compute.images() asks)."""
    with get_context(request).database.reader() as session:
        images = db_api.list_images(session)
    return {"images": [nova_view(request, i) for i in images if name is None or i.name == name]}


def show_image(request: Request, image_id: ImageIdPath) -> dict[str, Any]:
    """GET /images/{image_id}: glance's unwrapped object, with nova's view under "image".

    One URL serves both clients because every service shares filemem's one endpoint: the image
    client reads the top level (glance), the compute client the "image" key (nova).
    """
    with get_context(request).database.reader() as session:
        image = db_api.get_image(session, image_id) if is_uuid(image_id) else None
        if image is None:
            raise NotFound(f"Image {image_id} could not be found.")
        return {**view(request, image), "image": nova_view(request, image)}


def _check_file(field: str, path: str) -> None:
    """The file must exist and be a regular file (no device, directory or dangling link)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise BadRequest(f"{field} {path}: {exc.strerror or 'cannot be read'}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise BadRequest(f"{field} {path} is not a regular file")


def _check_inside(field: str, path: str, image_dirs: tuple[str, ...]) -> None:
    """The file, symlinks resolved, must lie below one of [api] image_dirs."""
    real = os.path.realpath(path)
    for directory in image_dirs:
        base = os.path.realpath(directory)
        if os.path.commonpath([real, base]) == base:
            return
    raise BadRequest(
        f"{field} {path} is not below a directory of [api] image_dirs "
        f"({', '.join(image_dirs) or 'none set'})"
    )


def create_image(request: Request, body: ImageCreate) -> dict[str, Any]:
    """POST /images (filemem extension): register a local kernel or disk image; 201."""
    for field, path in body.paths().items():
        _check_file(field, path)
        _check_inside(field, path, get_context(request).image_dirs)
    values = {
        "id": str(uuidlib.uuid4()),
        "name": body.name,
        "kind": body.kind,
        "kernel_path": body.kernel_path,
        "initrd_path": body.initrd_path,
        "cmdline": body.cmdline,
        "disk_path": body.disk_path,
        "disk_format": body.disk_format,
    }
    with get_context(request).database.session() as session:
        return view(request, db_api.create_image(session, values))
