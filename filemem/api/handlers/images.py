"""nova's image proxy (/v2.1/images, /images/detail, /images/{id}) over the glance catalogue.

nova removed the proxy at microversion 2.36: from there these calls answer 404, with the
message nova gives for a method its version lacks.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query, Request

from filemem.api.errors import NotFound
from filemem.api.handlers import glance, paging
from filemem.api.links import base_url, resource_links
from filemem.api.microversion import VERSION_NOT_FOUND, at_least
from filemem.db.models import Image

ImageIdPath = Annotated[str, Path(max_length=255)]
Param = Annotated[str | None, Query(max_length=255)]
PROXY_REMOVED_IN = "2.36"
# nova's image proxy statuses (nova/api/openstack/compute/views/images.py) and progress.
NOVA_STATUS = {"queued": "SAVING", "saving": "SAVING", "active": "ACTIVE", "killed": "ERROR"}


def _require_proxy(request: Request) -> None:
    if at_least(request, PROXY_REMOVED_IN):
        raise NotFound(VERSION_NOT_FOUND)


def _links(request: Request, image: Image) -> list[dict[str, Any]]:
    alternate = {
        "rel": "alternate",
        "type": "application/vnd.openstack.image",
        "href": f"{base_url(request)}{glance.PREFIX}/images/{image.id}",
    }
    return [*resource_links(request, "images", image.id), alternate]


def basic_view(request: Request, image: Image) -> dict[str, Any]:
    return {"id": image.id, "name": image.name, "links": _links(request, image)}


def detail_view(request: Request, image: Image) -> dict[str, Any]:
    """nova's image: glance's fields renamed and camelCased, properties as metadata."""
    return {
        "id": image.id,
        "name": image.name,
        "status": NOVA_STATUS.get(image.status, "UNKNOWN"),
        "progress": 100 if image.status == "active" else 25 if image.status == "saving" else 0,
        "minDisk": image.min_disk or 0,
        "minRam": image.min_ram or 0,
        "metadata": glance.properties(image),
        "created": glance.iso(image.created_at),
        "updated": glance.iso(image.created_at),
        "OS-EXT-IMG-SIZE:size": glance.size(image),
        "links": _links(request, image),
    }


def _listing(request: Request) -> list[Image]:
    """nova's filters that filemem can answer: name, status, minRam, minDisk; server and type
    name snapshots and backups, which filemem never makes."""
    params = request.query_params
    min_ram = paging.int_param(request, "minRam") or 0
    min_disk = paging.int_param(request, "minDisk") or 0
    count = paging.page_size(request)
    if "server" in params or "type" in params or min_ram > 0 or min_disk > 0:
        return []
    name, status = params.get("name"), params.get("status")
    images = [
        image
        for image in glance.all_images(request)
        if (name is None or image.name == name)
        and (status is None or NOVA_STATUS.get(image.status) == status.upper())
    ]
    chosen, _more = glance.page(images, params.get("marker"), count)
    return chosen


def _collection(request: Request, images: list[Image], path: str, item: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"images": [item(request, image) for image in images]}
    links = paging.next_links(request, body["images"], path)
    if links:
        body["images_links"] = links
    return body


def list_images(
    request: Request, name: Param = None, limit: Param = None, marker: Param = None
) -> dict[str, Any]:
    """GET /images[?name=&status=&limit=&marker=]: ids, names and links (up to 2.35)."""
    _require_proxy(request)
    return _collection(request, _listing(request), "images", basic_view)


def list_images_detail(
    request: Request, name: Param = None, limit: Param = None, marker: Param = None
) -> dict[str, Any]:
    """GET /images/detail: nova's full image (what openstacksdk's compute.images() asks)."""
    _require_proxy(request)
    return _collection(request, _listing(request), "images/detail", detail_view)


def show_image(request: Request, image_id: ImageIdPath) -> dict[str, Any]:
    """GET /images/{image_id}."""
    _require_proxy(request)
    try:
        image = glance.find(request, image_id)
    except NotFound:
        raise NotFound("Image not found.") from None
    return {"image": detail_view(request, image)}
