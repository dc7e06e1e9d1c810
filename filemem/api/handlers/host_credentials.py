"""Host credentials (/filemem/v1/hosts/{host}/credentials): an admin issues, lists, revokes the
credential a compute agent authenticates with; the secret is shown once, at creation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request, Response

from filemem.api.context import get_context
from filemem.api.errors import NotFound
from filemem.api.schemas.common import HostName
from filemem.db import host_credentials
from filemem.db.models import MAX_INTEGER, HostCredential

HostPath = Annotated[HostName, Path()]
CredentialIdPath = Annotated[int, Path(ge=1, le=MAX_INTEGER)]


def credential_view(credential: HostCredential) -> dict[str, Any]:
    def iso(value: Any) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": credential.id,
        "host": credential.host,
        "created_at": iso(credential.created_at),
        "last_used_at": iso(credential.last_used_at),
        "revoked_at": iso(credential.revoked_at),
    }


def create_credential(request: Request, host: HostPath) -> dict[str, Any]:
    """POST: 201 with the secret, which is stored nowhere (only its sha256) and never shown
    again. The host need not be registered yet: its agent registers with this credential."""
    with get_context(request).database.session() as session:
        credential, secret = host_credentials.create(session, host)
        view = credential_view(credential)
    return {"credential": {**view, "secret": secret}}


def list_credentials(request: Request, host: HostPath) -> dict[str, Any]:
    """GET: the host's credentials, revoked ones included, without secrets."""
    with get_context(request).database.reader() as session:
        found = host_credentials.list_for_host(session, host)
        return {"credentials": [credential_view(c) for c in found]}


def revoke_credential(
    request: Request, host: HostPath, credential_id: CredentialIdPath
) -> Response:
    """DELETE: 204; the credential stops working within seconds in every API process."""
    with get_context(request).database.session() as session:
        credential = host_credentials.get(session, host, credential_id)
        if credential is None:
            raise NotFound(f"Credential {credential_id} of host {host} could not be found.")
        host_credentials.revoke(session, credential)
    return Response(status_code=204)
