"""os-keypairs: import or generate, list, show, delete (nova's shapes at 2.1, 2.2, 2.10, 2.35)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query, Request, Response
from fastapi.responses import JSONResponse

from filemem.api import policy
from filemem.api.context import get_context
from filemem.api.errors import BadRequest, Conflict, NotFound
from filemem.api.identity import get_caller
from filemem.api.links import base_url
from filemem.api.microversion import at_least
from filemem.api.policies import compute as policies
from filemem.api.schemas.keypairs import KeypairCreateRequest
from filemem.common import keys
from filemem.db import keypairs as db_keypairs
from filemem.db.api import DuplicateEntry
from filemem.db.models import KeyPair

KeypairNamePath = Annotated[str, Path(min_length=1, max_length=255)]
UserIdQuery = Annotated[str | None, Query(min_length=1, max_length=255)]
Limit = Annotated[int | None, Query(ge=0, le=2**31 - 1)]
Marker = Annotated[str | None, Query(max_length=255)]
MAX_LIMIT = 1000


def _view(row: KeyPair, fields: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": row.name,
        "public_key": row.public_key,
        "fingerprint": row.fingerprint,
        "user_id": row.user_id,
        "type": row.type,
        "id": row.id,
        "created_at": row.created_at.isoformat(),
        "updated_at": None,
        "deleted": False,
        "deleted_at": None,
    }
    return {field: values[field] for field in fields}


INDEX_FIELDS = ("name", "public_key", "fingerprint")
CREATE_FIELDS = (*INDEX_FIELDS, "user_id")
SHOW_FIELDS = (*CREATE_FIELDS, "created_at", "deleted", "deleted_at", "id", "updated_at")


def _with_type(request: Request, fields: tuple[str, ...]) -> tuple[str, ...]:
    return (*fields, "type") if at_least(request, "2.2") else fields


def _user(request: Request, user_id: str | None, action: str) -> str:
    """The key pairs' owner: the caller, or (2.10) the user named, when the caller passes
    os-keypairs:<action> for that user (nova's: an admin, or that user)."""
    caller = get_caller(request)
    if user_id is not None and at_least(request, "2.10"):
        target = {"user_id": user_id, "project_id": caller.project_id}
        policy.authorize(request, policies.KEYPAIR % action, target)
        return user_id
    return caller.user_id


def _unexpected(field: str) -> BadRequest:
    return BadRequest(f"Additional properties are not allowed (keypair.{field} was unexpected)")


def create_keypair(request: Request, body: KeypairCreateRequest) -> Response:
    """POST /os-keypairs: 200 at 2.1, 201 from 2.2; a generated pair returns its private key."""
    spec = body.keypair
    if spec.type is not None and not at_least(request, "2.2"):
        raise _unexpected("type")
    if spec.user_id is not None and not at_least(request, "2.10"):
        raise _unexpected("user_id")
    key_type = spec.type or "ssh"
    private_key: str | None = None
    if spec.public_key is None:
        private_key, public_key = _generate(key_type, _user(request, spec.user_id, "create"))
    else:
        public_key = spec.public_key
    values = {
        "name": spec.name,
        "user_id": _user(request, spec.user_id, "create"),
        "type": key_type,
        "public_key": public_key,
        "fingerprint": _fingerprint(public_key, key_type),
    }
    try:
        with get_context(request).database.session() as session:
            row = db_keypairs.create(session, values)
            view = _view(row, _with_type(request, CREATE_FIELDS))
    except DuplicateEntry as exc:
        raise Conflict(str(exc)) from exc
    if private_key is not None:
        view = {"private_key": private_key, **view}
    status = 201 if at_least(request, "2.2") else 200
    return JSONResponse({"keypair": view}, status_code=status)


def _fingerprint(public_key: str, key_type: str) -> str:
    try:
        return keys.fingerprint(public_key, key_type)
    except keys.InvalidKey as exc:
        raise BadRequest(f"Keypair data is invalid: {exc}") from exc


def _generate(key_type: str, user_id: str) -> tuple[str, str]:
    """(private key, public key), made as nova makes them."""
    try:
        return keys.generate_x509(user_id) if key_type == "x509" else keys.generate_ssh()
    except keys.CannotGenerate as exc:
        raise BadRequest(
            "filemem cannot generate key pairs (the cryptography package is not installed): "
            "pass public_key to import one"
        ) from exc


def list_keypairs(
    request: Request, user_id: UserIdQuery = None, limit: Limit = None, marker: Marker = None
) -> dict[str, Any]:
    """GET /os-keypairs: by name; limit and marker (and next links) from 2.35."""
    paged = at_least(request, "2.35")
    count = min(limit if limit is not None else MAX_LIMIT, MAX_LIMIT) if paged else None
    owner = _user(request, user_id, "index")
    try:
        with get_context(request).database.reader() as session:
            rows = db_keypairs.list_for_user(
                session, owner, limit=count, marker=marker if paged else None
            )
    except db_keypairs.MarkerNotFound as exc:
        raise BadRequest(str(exc)) from exc
    fields = _with_type(request, INDEX_FIELDS)
    body: dict[str, Any] = {"keypairs": [{"keypair": _view(row, fields)} for row in rows]}
    if paged and count and len(rows) == count:
        # nova links to the next page whenever the page is full.
        query = request.url.include_query_params(marker=rows[-1].name)
        href = f"{base_url(request)}/v2.1/os-keypairs?{query.query}"
        body["keypairs_links"] = [{"rel": "next", "href": href}]
    return body


def _find(request: Request, name: str, user_id: str | None) -> KeyPair:
    owner = _user(request, user_id, "show")
    with get_context(request).database.reader() as session:
        row = db_keypairs.get(session, owner, name)
    if row is None:
        raise NotFound(f"Keypair {name} not found for user {owner}")
    return row


def show_keypair(
    request: Request, keypair_name: KeypairNamePath, user_id: UserIdQuery = None
) -> dict[str, Any]:
    """GET /os-keypairs/{name}."""
    row = _find(request, keypair_name, user_id)
    return {"keypair": _view(row, _with_type(request, SHOW_FIELDS))}


def delete_keypair(
    request: Request, keypair_name: KeypairNamePath, user_id: UserIdQuery = None
) -> Response:
    """DELETE /os-keypairs/{name}: 202 at 2.1, 204 from 2.2."""
    owner = _user(request, user_id, "delete")
    with get_context(request).database.session() as session:
        row = db_keypairs.get(session, owner, keypair_name)
        if row is None:
            raise NotFound(f"Keypair {keypair_name} not found for user {owner}")
        db_keypairs.delete(session, row)
    return Response(status_code=204 if at_least(request, "2.2") else 202)
