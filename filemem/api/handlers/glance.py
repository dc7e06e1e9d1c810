"""The image catalogue as glance's v2 API at /image: versions, list, show and create (POST).

An image is registered by path (a kernel, initrd and command line, or a disk, on every host:
active and public at once, its paths shown as image properties), or created queued and its
data uploaded to the API (glance_data.py), which hosts then download.
"""

from __future__ import annotations

import os
import uuid as uuidlib
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Path, Query, Request
from fastapi.responses import JSONResponse

from filemem.api.context import get_context
from filemem.api.errors import BadRequest, Conflict, Forbidden, NotFound
from filemem.api.handlers import image_files
from filemem.api.identity import Caller, get_caller
from filemem.api.links import base_url
from filemem.api.policies import filemem as P
from filemem.api.policy import authorize
from filemem.api.schemas.common import is_uuid
from filemem.api.schemas.images import GlanceImageCreate
from filemem.db import api as db_api
from filemem.db.models import Image

PREFIX = "/image"
ImageIdPath = Annotated[str, Path(max_length=255)]
Param = Annotated[str | None, Query(max_length=1024)]
MAX_IDS = 200
# glance's [DEFAULT] limit_param_default and api_limit_max.
DEFAULT_LIMIT = 25
MAX_LIMIT = 1000
SORT_KEYS = (
    "name",
    "status",
    "container_format",
    "disk_format",
    "size",
    "id",
    "created_at",
    "updated_at",
)
VISIBILITIES = ("community", "public", "private", "shared", "all")


def iso(value: Any) -> str:
    return f"{value.isoformat(timespec='seconds')}Z"


def size(image: Image) -> int | None:
    """The stored size of an upload, else the disk file's, or the kernel's for a kernel image;
    None if it cannot be read."""
    if image.source == "upload":
        return image.size
    path = image.disk_path if image.kind == "disk" else image.kernel_path
    try:
        return os.stat(path).st_size if path else None
    except OSError:
        return None


def visible(caller: Caller, image: Image) -> bool:
    """glance's rule: the admin sees all; public and community images everyone; private and
    shared ones their owner project."""
    if caller.is_admin or image.visibility in ("public", "community"):
        return True
    return image.owner is not None and image.owner == caller.project_id


def properties(image: Image) -> dict[str, str]:
    """filemem's fields as glance image properties (all strings; unset ones left out)."""
    named = {
        "filemem_kind": image.kind,
        "kernel_path": image.kernel_path,
        "initrd_path": image.initrd_path,
        "cmdline": image.cmdline if image.kind == "kernel" else None,
        "disk_path": image.disk_path,
    }
    stored = {key: str(value) for key, value in (image.properties or {}).items()}
    return {**stored, **{key: value for key, value in named.items() if value is not None}}


def disk_format(image: Image) -> str | None:
    # A kernel image is what glance calls an "aki" (kernel) image.
    if image.kind != "disk":
        return "aki"
    return image.disk_format if image.source == "upload" else (image.disk_format or "qcow2")


def view(image: Image) -> dict[str, Any]:
    """glance's image: its attributes, then the properties flat beside them."""
    return {
        **properties(image),
        "id": image.id,
        "name": image.name,
        "status": image.status,
        "visibility": image.visibility,
        "protected": bool(image.protected),
        "os_hidden": False,
        "checksum": image.checksum,
        "os_hash_algo": image.os_hash_algo,
        "os_hash_value": image.os_hash_value,
        "owner": image.owner,
        "container_format": image.container_format or "bare",
        "disk_format": disk_format(image),
        "size": size(image),
        "virtual_size": image.virtual_size,
        "min_disk": image.min_disk or 0,
        "min_ram": image.min_ram or 0,
        "tags": [],
        "created_at": iso(image.created_at),
        "updated_at": iso(image.updated_at or image.created_at),
        "self": f"/v2/images/{image.id}",
        "file": f"/v2/images/{image.id}/file",
        "schema": "/v2/schemas/image",
    }


def find(request: Request, image_id: str) -> Image:
    """The image, if the caller may see it (else 404, as glance: no hint that it exists)."""
    with get_context(request).database.reader() as session:
        image = db_api.get_image(session, image_id) if is_uuid(image_id) else None
    if image is None or not visible(get_caller(request), image):
        raise NotFound(f"No image found with ID {image_id}")
    return image


def all_images(request: Request, ids: list[str] | None = None) -> list[Image]:
    """Those the caller may see, newest first, as glance lists by default."""
    caller = get_caller(request)
    with get_context(request).database.reader() as session:
        return [image for image in db_api.list_images(session, ids) if visible(caller, image)]


# -- versions ---------------------------------------------------------------------------------


def _versions(request: Request) -> dict[str, Any]:
    href = f"{base_url(request)}{PREFIX}/v2/"
    return {
        "versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": href}]}]
    }


def image_versions_root(request: Request) -> JSONResponse:
    """GET /image: glance answers its version list with 300 Multiple Choices."""
    return JSONResponse(_versions(request), status_code=300)


def image_versions(request: Request) -> dict[str, Any]:
    """GET /image/versions: the same list, 200."""
    return _versions(request)


# -- list ---------------------------------------------------------------------------------


def _ids_filter(value: str | None) -> list[str] | None:
    """glance's id filter: one id, or "in:<id1>,<id2>" (what `openstack server list` sends)."""
    if value is None:
        return None
    ids = value[3:].split(",") if value.startswith("in:") else [value]
    if len(ids) > MAX_IDS:
        raise BadRequest(f"id: at most {MAX_IDS} ids may be asked for at once")
    return [str(uuidlib.UUID(i.strip())) for i in ids if is_uuid(i.strip())]


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        raise BadRequest("limit param must be an integer") from None
    if limit < 0:
        raise BadRequest("limit param must be positive")
    return min(limit, MAX_LIMIT)


def _sort_key(key: str) -> str:
    if key not in SORT_KEYS:
        raise BadRequest(
            f"Invalid sort key: {key}. It must be one of the following: {', '.join(SORT_KEYS)}."
        )
    return key


def _sort_dir(direction: str) -> bool:
    """True for descending."""
    if direction not in ("asc", "desc"):
        raise BadRequest(f"Invalid sort direction: {direction}")
    return direction == "desc"


def sorting(sort: str | None, sort_key: str | None, sort_dir: str | None) -> list[tuple[str, bool]]:
    """glance's two syntaxes: sort=name:asc,size:desc or sort_key=name&sort_dir=asc."""
    if sort is not None:
        if sort_key is not None or sort_dir is not None:
            raise BadRequest("Old and new sorting syntax cannot be combined")
        pairs = []
        for part in sort.strip().split(","):
            key, _sep, direction = part.partition(":")
            pairs.append((_sort_key(key.strip()), _sort_dir(direction.strip() or "desc")))
        return pairs
    return [(_sort_key(sort_key or "created_at"), _sort_dir(sort_dir or "desc"))]


def sort_images(images: list[Image], order: list[tuple[str, bool]]) -> list[Image]:
    """Sorted by `order`, ties broken by id as glance does; None sorts first."""
    keyed = {image.id: view(image) for image in images}
    if "id" not in [key for key, _desc in order]:
        order = [*order, ("id", order[-1][1])]
    result = list(images)
    for key, descending in reversed(order):
        result.sort(key=_sort_value(keyed, key), reverse=descending)
    return result


def _sort_value(views: dict[str, dict[str, Any]], key: str) -> Callable[[Image], tuple[bool, Any]]:
    def value(image: Image) -> tuple[bool, Any]:
        # The times themselves: the views show whole seconds only.
        dated = key in ("created_at", "updated_at")
        item = image.created_at if dated else views[image.id][key]
        return (item is not None, item if item is not None else 0)

    return value


def _matches(
    item: dict[str, Any], name: str | None, status: str | None, vis: str | None, project: str
) -> bool:
    # Unfiltered, glance lists community images only to their owner.
    hidden = vis is None and item["visibility"] == "community" and item["owner"] != project
    return (
        (name is None or item["name"] == name)
        and (status is None or item["status"] == status)
        and (vis in (None, "all") or item["visibility"] == vis)
        and not hidden
    )


def page(images: list[Image], marker: str | None, limit: int) -> tuple[list[Image], bool]:
    """The page after `marker`, and whether a next page may follow (a full page)."""
    if marker is not None:
        ids = [image.id for image in images]
        if marker not in ids:
            raise BadRequest(f"No image found with ID {marker}")
        images = images[ids.index(marker) + 1 :]
    chosen = images[:limit]
    return chosen, bool(chosen) and len(chosen) == limit


def list_images(
    request: Request,
    id: Annotated[str | None, Query(max_length=8192)] = None,
    name: Param = None,
    status: Param = None,
    visibility: Param = None,
    limit: Param = None,
    marker: Param = None,
    sort: Param = None,
    sort_key: Param = None,
    sort_dir: Param = None,
) -> dict[str, Any]:
    """GET /image/v2/images with glance's filters, sorting and marker pagination."""
    if visibility is not None and visibility not in VISIBILITIES:
        raise BadRequest(f"Invalid visibility value: {visibility}")
    if "changes-since" in request.query_params:
        raise BadRequest('The "changes-since" filter is no longer available on v2.')
    count, order = _limit(limit), sorting(sort, sort_key, sort_dir)
    images = [
        image
        for image in all_images(request, _ids_filter(id))
        if _matches(view(image), name, status, visibility, get_caller(request).project_id)
    ]
    chosen, more = page(sort_images(images, order), marker, count)
    params = {k: v for k, v in request.query_params.items() if k != "marker"}
    body: dict[str, Any] = {
        "images": [view(image) for image in chosen],
        "first": "/v2/images" + (f"?{urlencode(params)}" if params else ""),
        "schema": "/v2/schemas/images",
    }
    if more:
        body["next"] = "/v2/images?" + urlencode({**params, "marker": chosen[-1].id})
    return body


def show_image(request: Request, image_id: ImageIdPath) -> dict[str, Any]:
    """GET /image/v2/images/{image_id}."""
    return view(find(request, image_id))


def create_image(request: Request, body: GlanceImageCreate) -> dict[str, Any]:
    """POST /image/v2/images: register a kernel or disk image already on the hosts (the
    admin's), or create a queued image for an upload (a member, into their project); 201."""
    if body.read_only():
        raise Forbidden(f"Attribute '{body.read_only()[0]}' is read-only.")
    if body.is_upload():
        return _create_queued(request, body)
    authorize(request, P.IMAGE_UPLOAD)
    paths = image_files.check(body.paths(), get_context(request).image_dirs, body.disk_format)
    values = {
        "id": str(uuidlib.uuid4()),
        "name": body.name,
        "kind": body.kind(),
        "kernel_path": paths.get("kernel_path"),
        "initrd_path": paths.get("initrd_path"),
        "cmdline": body.cmdline or "",
        "disk_path": paths.get("disk_path"),
        "disk_format": body.disk_format if body.kind() == "disk" else None,
        "properties": body.properties(),
    }
    with get_context(request).database.session() as session:
        return view(db_api.create_image(session, values))


def _create_queued(request: Request, body: GlanceImageCreate) -> dict[str, Any]:
    caller = get_caller(request)
    visibility = body.visibility or "shared"  # glance's default since Ocata
    if visibility == "public" and not caller.is_admin:
        raise Forbidden("You are not authorized to complete publicize_image action.")
    image_id = body.id or str(uuidlib.uuid4())
    values: dict[str, Any] = {
        "id": image_id,
        "name": body.name or "",
        "kind": "disk",
        "source": "upload",
        "status": "queued",
        "owner": caller.project_id,
        "visibility": visibility,
        "protected": body.protected,
        "container_format": body.container_format,
        "disk_format": body.disk_format,
        "min_disk": body.min_disk,
        "min_ram": body.min_ram,
        "properties": body.properties(),
    }
    with get_context(request).database.session() as session:
        if db_api.get_image(session, image_id) is not None:
            raise Conflict(f"Image with identifier {image_id} already exists!")
        return view(db_api.create_image(session, values))
