"""nova's metadata API for Neutron's metadata proxy: the instance its signed headers name."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import posixpath

from fastapi import FastAPI, Request, Response

from filemem.api.context import ApiContext
from filemem.api.handlers.server_views import agent_view
from filemem.common.guests import validate_uuid
from filemem.common.instance_metadata import InstanceFacts
from filemem.common.metadata_paths import TEXT, lookup, versions_listing
from filemem.db import api as db_api
from filemem.exceptions import InvalidInput

LOG = logging.getLogger(__name__)

# nova's random_seed: new at every request of meta_data.json.
RANDOM_SEED_BYTES = 512
_HEADERS = ("X-Instance-ID", "X-Instance-ID-Signature", "X-Tenant-ID")


def signature(secret: str, instance_id: str) -> str:
    """What Neutron's metadata proxy sends as X-Instance-ID-Signature."""
    return hmac.new(secret.encode(), instance_id.encode(), hashlib.sha256).hexdigest()


def _text(status: int, message: str) -> Response:
    return Response(message, status_code=status, media_type=TEXT)


def _refusal(request: Request, secret: str) -> Response | None:
    """nova's _handle_instance_id_request checks, in its order: 400 for a missing or repeated
    header (named), 403 for a signature that does not match."""
    for name in _HEADERS:
        values = request.headers.getlist(name)
        if not values:
            return _text(400, f"{name} header is missing from request.")
        if len(values) > 1:
            return _text(400, f"Multiple {name} headers found within request.")
    instance_id = request.headers["X-Instance-ID"]
    given = request.headers["X-Instance-ID-Signature"]
    if not hmac.compare_digest(signature(secret, instance_id), given):
        LOG.warning("X-Instance-ID-Signature does not match for instance %s", instance_id)
        return _text(403, "Invalid proxy request signature.")
    return None


def _facts(ctx: ApiContext, instance_id: str, tenant_id: str) -> InstanceFacts | None:
    """The instance's facts as its agent sees them; None (404) for an instance that does not
    exist, is being deleted, or is not of the tenant the proxy named (as nova)."""
    try:
        uuid = validate_uuid(instance_id)
    except InvalidInput:
        return None
    with ctx.database.reader() as session:
        instance = db_api.get_instance(session, uuid)
        if instance is None or instance.deleted_requested or instance.project_id != tenant_id:
            return None
        image = db_api.get_image(session, instance.image_id)
        return InstanceFacts.from_view(agent_view(instance, image))


def create_metadata_app(ctx: ApiContext, shared_secret: str) -> FastAPI:
    """The metadata API's own app (its own listener: guests never reach the Compute API)."""
    if not shared_secret:
        raise ValueError("the metadata API needs [neutron] metadata_proxy_shared_secret")
    app = FastAPI(title="filemem metadata", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/{path:path}")
    def metadata(request: Request, path: str) -> Response:
        if posixpath.normpath("/" + path) == "/":
            return Response(versions_listing(), media_type=TEXT)
        refusal = _refusal(request, shared_secret)
        if refusal is not None:
            return refusal
        facts = _facts(ctx, request.headers["X-Instance-ID"], request.headers["X-Tenant-ID"])
        if facts is None:
            return _text(404, "The resource could not be found.")
        try:
            body, media_type = lookup(facts, path, os.urandom(RANDOM_SEED_BYTES))
        except KeyError:
            return _text(404, "The resource could not be found.")
        return Response(body, media_type=media_type)

    return app
