"""/placement/*: the embedded Placement of `filemem up`, for the host's CLI views (admin token).

Embedded Placement keeps its SQLite database in the `filemem up` process, which must stay its
only writer: `filemem host show` reads Placement through here instead of opening that file.
A filemem-api on a standalone Placement answers 404 and names the Placement to ask instead.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from filemem.api.context import get_context
from filemem.api.errors import BadRequest, NotFound
from filemem.placement.embedded import EmbeddedTransport

PREFIX = "/placement"
_FORWARDED = ("openstack-api-version", "content-type", "accept")


async def forward(request: Request, path: str) -> Response:
    """Any method on /placement/{path}: the embedded app's answer, status and body as is."""
    ctx = get_context(request)
    transport = ctx.placement.transport
    if not isinstance(transport, EmbeddedTransport):
        raise NotFound(f"this API uses the Placement at {transport.endpoint}; ask it directly")
    raw = await request.body()
    try:
        body: dict[str, Any] | None = json.loads(raw) if raw else None
    except ValueError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from exc
    target = "/" + path + (f"?{request.url.query}" if request.url.query else "")
    headers = {k: v for k, v in request.headers.items() if k.lower() in _FORWARDED}
    # The embedded app blocks (and serialises on its lock): keep it off the event loop.
    answer = await run_in_threadpool(transport.request, request.method, target, body, headers)
    content = json.dumps(answer.body).encode() if answer.body is not None else b""
    return Response(
        content=content,
        status_code=answer.status,
        media_type="application/json" if content else None,
    )
