"""Nova-style error bodies ({"badRequest": {"message", "code"}}) and the app's error handlers."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.body_limit import MAX_BODY_SIZE_SCOPE_KEY
from starlette.types import Send

from filemem.common import agent_wire
from filemem.exceptions import PlacementError

LOG = logging.getLogger(__name__)

_KEYS = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    406: "notAcceptable",
    408: "requestTimeout",
    409: "conflictingRequest",
    413: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    503: "serviceUnavailable",
}


class ApiError(Exception):
    """An error answered with its status and a message meant for the client."""

    status = 500

    def __init__(self, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class BadRequest(ApiError):
    status = 400


class Forbidden(ApiError):
    status = 403


class NotFound(ApiError):
    status = 404


class Gone(NotFound):
    """The agent API's 404 for an instance or migration that no longer exists: nova's body
    plus the X-Filemem-Gone header, which tells it apart from a route the API lacks."""

    def __init__(self, kind: str, ident: str) -> None:
        assert kind in agent_wire.GONE_KINDS
        super().__init__(
            f"{kind.capitalize()} {ident} could not be found.", {agent_wire.GONE_HEADER: kind}
        )


class NotAcceptable(ApiError):
    """nova's answer to a version it does not speak (here: the agent contract's)."""

    status = 406


class Conflict(ApiError):
    status = 409


class TooManyRequests(ApiError):
    status = 429


class ServiceUnavailable(ApiError):
    status = 503


def error_body(status: int, message: str) -> dict[str, Any]:
    return {_KEYS.get(status, "computeFault"): {"message": message, "code": status}}


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


def too_large_message(limit: object) -> str:
    return f"Request body is larger than the API accepts ({limit} bytes)."


async def send_error(
    send: Send, status: int, message: str, headers: dict[str, str] | None = None
) -> None:
    """The error answered straight from ASGI middleware, outside FastAPI's handlers."""
    body = json.dumps(error_body(status, message)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})


def _where(loc: Sequence[Any]) -> str:
    parts = [str(part) for part in loc]
    if not parts or parts[0] not in _SOURCES:
        parts.insert(0, "body")
    where, *rest = parts
    if where == "body":
        return ".".join(rest) if rest else "request body"
    field = ".".join(rest)
    return f"{where} parameter {field}" if field else where


def validation_message(errors: Sequence[Any]) -> str:
    """One sentence for the first problem, in the spirit of nova's jsonschema messages."""
    if not errors:
        return "Invalid input"
    first = errors[0]
    kind = str(first.get("type", ""))
    if kind == "json_invalid":
        return "Malformed request body"
    loc = first.get("loc") or ()
    if kind == "missing" and tuple(loc) == ("body",):
        return "The request body is missing or is not JSON"
    if kind == "extra_forbidden":
        return f"Additional properties are not allowed ({_where(loc)} was unexpected)"
    message = str(first.get("msg", "invalid"))
    if kind == "filemem_invalid":
        return message
    return f"Invalid input for field/attribute {_where(loc)}: {message}"


async def _on_api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.message, exc.headers)


async def _on_validation(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(400, validation_message(exc.errors()))


async def _on_http(request: Request, exc: Exception) -> JSONResponse:
    """Routing's own 404/405: a call filemem does not implement says so, naming the call, so
    that it never reads like a missing server (handlers raise NotFound for those)."""
    assert isinstance(exc, StarletteHTTPException)
    call = f"{request.method} {request.url.path}"
    messages = {
        404: f"filemem does not implement {call}: it serves a subset of the OpenStack Compute "
        "API v2.1 (GET /openapi.json lists it)",
        405: f"filemem does not implement {call}: that method is not supported on this "
        "resource (GET /openapi.json lists what is)",
    }
    if exc.status_code == 413:
        # Starlette's body limit ("Content Too Large"); say which limit.
        messages[413] = too_large_message(request.scope.get(MAX_BODY_SIZE_SCOPE_KEY))
    message = messages.get(exc.status_code, str(exc.detail))
    return error_response(exc.status_code, message, dict(exc.headers or {}))


def placement_status(exc: PlacementError) -> int:
    """The status a Placement failure that reached the API answers with: 409 for a conflict
    (a generation race that outlasted the retries, or a claim that does not fit: the client
    may retry or change the request), 500 for any other 4xx (filemem asked Placement for
    something wrong: a bug, not an outage), 503 when Placement is down or failing (the
    client retries later). Operations where no room means nova's "No valid host" turn
    InsufficientCapacity into that before it gets here."""
    status = exc.status
    if status == 409:
        return 409
    if status is not None and 400 <= status < 500 and status not in (401, 403):
        return 500
    return 503  # unreachable, 5xx, or Placement refusing filemem's own credentials


_PLACEMENT_MESSAGES = {
    409: "Placement refused a conflicting change; try again: {exc}",
    500: "Unexpected API Error: Placement refused filemem's request: {exc}",
    503: "Placement is unavailable or failed: {exc}",
}


async def _on_placement(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PlacementError)
    status = placement_status(exc)
    if status == 500:
        LOG.error("Placement refused a request of filemem", exc_info=exc)
    else:
        LOG.warning("Placement failed (%d): %s", status, exc)
    return error_response(status, _PLACEMENT_MESSAGES[status].format(exc=exc))


async def _on_unexpected(_request: Request, exc: Exception) -> JSONResponse:
    LOG.exception("unexpected error", exc_info=exc)
    return error_response(500, "Unexpected API Error. Please check the filemem-api log.")


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(PlacementError, _on_placement)
    app.add_exception_handler(Exception, _on_unexpected)
