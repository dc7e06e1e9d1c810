"""glance's PATCH (a JSON patch of attributes and properties) and DELETE of an image."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Path as PathParam
from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from filemem.api import image_store
from filemem.api.context import get_context
from filemem.api.errors import ApiError, BadRequest, Conflict, Forbidden, NotFound
from filemem.api.handlers import glance
from filemem.api.handlers.glance_data import may_change, store_dir
from filemem.api.identity import get_caller
from filemem.api.schemas.common import is_uuid
from filemem.api.schemas.flavors import PAGE_SIZE_RE
from filemem.api.schemas.images import FILEMEM_NAMES, PROPERTY_VALUE_MAX, READ_ONLY
from filemem.common.resources import IMAGE_MEM_PAGE_SIZE
from filemem.db import api as db_api
from filemem.db import images as images_db
from filemem.db.models import Image

ImageIdPath = Annotated[str, PathParam(max_length=255)]
PATCH_TYPES = (
    "application/openstack-images-v2.1-json-patch",
    "application/openstack-images-v2.0-json-patch",
)
MAX_OPERATIONS = 256
VISIBILITIES = ("public", "private", "shared", "community")
# Attributes a patch may set, and which of them only a queued image may change.
SETTABLE = ("name", "visibility", "protected", "min_disk", "min_ram")
QUEUED_ONLY = ("disk_format", "container_format")
# filemem's fields shown as properties of a path-registered image: not a client's to change.
PATH_FIELDS = frozenset({"kernel_path", "initrd_path", "cmdline", "disk_path"})


class UnsupportedMediaType(ApiError):
    status = 415


def _operations(raw: bytes) -> list[dict[str, Any]]:
    try:
        ops = json.loads(raw)
    except ValueError:
        raise BadRequest("The request body is not a JSON patch document.") from None
    if not isinstance(ops, list) or len(ops) > MAX_OPERATIONS:
        raise BadRequest(f"A JSON patch is a list of at most {MAX_OPERATIONS} operations.")
    for op in ops:
        if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove"):
            raise BadRequest(f"Operation {op!r}: op must be add, replace or remove.")
        path = op.get("path")
        if not isinstance(path, str) or not path.startswith("/") or path.count("/") != 1:
            raise BadRequest(f"Operation {op!r}: path must be one /name.")
        if op["op"] != "remove" and "value" not in op:
            raise BadRequest(f"Operation {op!r}: value is required.")
    return ops


def _attribute(key: str, value: Any, image: Image, is_admin: bool) -> Any:
    """A checked value of glance attribute `key`."""
    if key == "name":
        if not isinstance(value, str) or len(value) > 255 or not value.isprintable():
            raise BadRequest("name: must be a printable string of at most 255 characters")
        return value
    if key == "visibility":
        if value not in VISIBILITIES:
            raise BadRequest(f"visibility: {value!r} is not one of {', '.join(VISIBILITIES)}")
        if value == "public" and not is_admin:
            raise Forbidden("You are not authorized to complete publicize_image action.")
        return value
    if key == "protected":
        if not isinstance(value, bool):
            raise BadRequest(f"protected: {value!r} is not of type 'boolean'")
        return value
    if key in ("min_disk", "min_ram"):
        if type(value) is not int or not 0 <= value < 2**31:
            raise BadRequest(f"{key}: {value!r} is not a non-negative integer")
        return value
    if image.status != "queued" or image.source != "upload":
        raise Conflict(f"{key} may be changed only while the image is queued")
    allowed = ("qcow2", "raw") if key == "disk_format" else ("bare",)
    if value not in allowed:
        raise BadRequest(f"{key}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _property(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"property {key}: {value!r} is not of type 'string'")
    if len(key) > 255 or len(value) > PROPERTY_VALUE_MAX or not key.isprintable():
        raise BadRequest(f"property {key[:64]}: name or value too long, or not printable")
    if key == IMAGE_MEM_PAGE_SIZE and not PAGE_SIZE_RE.match(value):
        raise BadRequest(f"hw_mem_page_size {value!r} is not small, large, any or a size")
    return value


def _apply(image: Image, ops: list[dict[str, Any]], is_admin: bool) -> dict[str, Any]:
    """The new column values the patch gives `image`."""
    values: dict[str, Any] = {}
    props = dict(image.properties or {})
    for op in ops:
        key = op["path"][1:]
        if key in READ_ONLY or key in FILEMEM_NAMES or key in PATH_FIELDS or key in ("id", "owner"):
            raise Forbidden(f"Attribute '{key}' is read-only.")
        if key in SETTABLE or key in QUEUED_ONLY:
            if op["op"] == "remove":
                raise Forbidden(f"Attribute '{key}' may not be removed.")
            values[key] = _attribute(key, op["value"], image, is_admin)
        elif op["op"] == "remove":
            if key not in props:
                raise Conflict(f"Property {key} does not exist.")
            del props[key]
        else:
            if op["op"] == "replace" and key not in props:
                raise Conflict(f"Property {key} does not exist.")
            props[key] = _property(key, op["value"])
    if props != (image.properties or {}):
        values["properties"] = props
    return values


def _patch(request: Request, image_id: str, ops: list[dict[str, Any]]) -> dict[str, Any]:
    caller = get_caller(request)
    with get_context(request).database.session() as session:
        image = db_api.get_image(session, image_id) if is_uuid(image_id) else None
        if image is None or not glance.visible(caller, image):
            raise NotFound(f"No image found with ID {image_id}")
        if not may_change(caller, image):
            raise Forbidden("You are not authorized to complete modify_image action.")
        values = _apply(image, ops, caller.is_admin)
        if values:
            images_db.update_image(session, image, values)
        return glance.view(image)


async def update_image(request: Request, image_id: ImageIdPath) -> dict[str, Any]:
    """PATCH /image/v2/images/{image_id} (application/openstack-images-v2.1-json-patch)."""
    media = request.headers.get("content-type", "").split(";")[0].strip()
    if media not in PATCH_TYPES:
        raise UnsupportedMediaType(
            f"Unsupported Content-Type {media or '(none)'}: use {PATCH_TYPES[0]}"
        )
    ops = _operations(await request.body())
    result: dict[str, Any] = await run_in_threadpool(_patch, request, image_id, ops)
    return result


def delete_image(request: Request, image_id: ImageIdPath) -> Response:
    """DELETE /image/v2/images/{image_id}: the row, and the stored data of an upload (a file
    registered by path is the operator's and stays); 403 for a protected image, as glance."""
    ctx = get_context(request)
    image = glance.find(request, image_id)
    if not may_change(get_caller(request), image):
        raise Forbidden("You are not authorized to complete delete_image action.")
    if image.protected:
        raise Forbidden(f"Image {image.id} is protected and cannot be deleted.")
    with ctx.database.session() as session:
        images_db.delete_image(session, image.id)
    if image.source == "upload" and ctx.image_store_dir is not None:
        image_store.remove(store_dir(ctx), image.id)
    return Response(status_code=204)
