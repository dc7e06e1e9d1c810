"""Flavor extra specs (os-extra_specs): list, set, show, update and delete one key."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request, Response

from filemem.api.context import get_context
from filemem.api.errors import BadRequest, NotFound
from filemem.api.handlers.flavors import FlavorIdPath, find
from filemem.api.schemas.flavors import ExtraSpecItem, ExtraSpecsRequest
from filemem.db import api as db_api

KeyPath = Annotated[str, Path(max_length=255)]


def list_extra_specs(request: Request, flavor_id: FlavorIdPath) -> dict[str, Any]:
    """GET /flavors/{flavor_id}/os-extra_specs."""
    with get_context(request).database.reader() as session:
        return {"extra_specs": find(request, session, flavor_id).specs()}


def create_extra_specs(
    request: Request, flavor_id: FlavorIdPath, body: ExtraSpecsRequest
) -> dict[str, Any]:
    """POST /flavors/{flavor_id}/os-extra_specs: create or overwrite the given keys."""
    with get_context(request).database.session() as session:
        db_api.set_extra_specs(session, find(request, session, flavor_id), body.extra_specs)
    return {"extra_specs": body.extra_specs}


def show_extra_spec(request: Request, flavor_id: FlavorIdPath, key: KeyPath) -> dict[str, Any]:
    """GET /flavors/{flavor_id}/os-extra_specs/{key}."""
    with get_context(request).database.reader() as session:
        specs = find(request, session, flavor_id).specs()
    if key not in specs:
        raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
    return {key: specs[key]}


def update_extra_spec(
    request: Request, flavor_id: FlavorIdPath, key: KeyPath, body: ExtraSpecItem
) -> dict[str, Any]:
    """PUT /flavors/{flavor_id}/os-extra_specs/{key} with body {key: value}."""
    if key not in body.root:
        raise BadRequest("Request body and URI mismatch")
    with get_context(request).database.session() as session:
        db_api.set_extra_specs(session, find(request, session, flavor_id), body.root)
    return dict(body.root)


def delete_extra_spec(request: Request, flavor_id: FlavorIdPath, key: KeyPath) -> Response:
    """DELETE /flavors/{flavor_id}/os-extra_specs/{key}."""
    with get_context(request).database.session() as session:
        if not db_api.delete_extra_spec(session, find(request, session, flavor_id), key):
            raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
    return Response(status_code=200)
