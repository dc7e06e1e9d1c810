"""Compute API microversions as nova negotiates them: headers, "latest", 400 and 406.

A request names its version in `OpenStack-API-Version: compute X.Y` or the older
`X-OpenStack-Nova-API-Version: X.Y` (the first wins when both are sent); without either it gets
the minimum. Answers carry the version they were served at and `Vary` on both headers.
MAX_VERSION only rises when every call filemem serves behaves as nova's does at that version.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import total_ordering

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from filemem.api.errors import NotFound, error_body

SERVICE_TYPE = "compute"
HEADER = "OpenStack-API-Version"
LEGACY_HEADER = "X-OpenStack-Nova-API-Version"
_FORMAT = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


@total_ordering
@dataclass(frozen=True)
class APIVersion:
    major: int
    minor: int

    @classmethod
    def parse(cls, text: str) -> APIVersion:
        """ "2.25" -> APIVersion(2, 25); a malformed string raises InvalidVersion (400)."""
        match = _FORMAT.match(text.strip())
        if match is None:
            raise InvalidVersion(
                f"API Version String {text} is of invalid format. Must be of format "
                "MajorNum.MinorNum."
            )
        return cls(int(match.group(1)), int(match.group(2)))

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, APIVersion):
            return NotImplemented
        return (self.major, self.minor) < (other.major, other.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}"


MIN_VERSION = APIVersion(2, 1)
MAX_VERSION = APIVersion(2, 37)


def api_version(request: Request) -> APIVersion:
    """The version this request is served at (the minimum outside /v2.1)."""
    version = request.scope.get("state", {}).get("api_version", MIN_VERSION)
    assert isinstance(version, APIVersion)
    return version


def at_least(request: Request, version: str) -> bool:
    """Whether the request is served at `version` or later: at_least(request, "2.19")."""
    return api_version(request) >= APIVersion.parse(version)


# nova's answer (webob's HTTPNotFound) to a method its microversion does not have yet.
VERSION_NOT_FOUND = "The resource could not be found."


def require(request: Request, since: str, message: str = VERSION_NOT_FOUND) -> None:
    """404 unless the request is served at `since` or later, as nova refuses such a method."""
    if not at_least(request, since):
        raise NotFound(message)


class InvalidVersion(ValueError):
    """The header's version string is malformed: nova answers 400."""


class UnsupportedVersion(ValueError):
    """A well-formed version outside [MIN_VERSION, MAX_VERSION]: nova answers 406."""


def requested(headers: Mapping[str, str]) -> str | None:
    """The compute version string a request asks for, or None (case-insensitive names)."""
    lowered = {name.lower(): value for name, value in headers.items()}
    value = lowered.get(HEADER.lower())
    if value is not None:
        # "compute 2.25", possibly among other services' entries: "compute 2.25, image 2.5".
        for entry in value.split(","):
            service, _, version = entry.strip().partition(" ")
            if service.lower() == SERVICE_TYPE and version.strip():
                return version.strip()
    return lowered.get(LEGACY_HEADER.lower())


def negotiate(
    text: str | None,
    minimum: APIVersion = MIN_VERSION,
    maximum: APIVersion = MAX_VERSION,
) -> APIVersion:
    """The version to serve a request at; raises InvalidVersion or UnsupportedVersion."""
    if text is None:
        return minimum
    if text.strip().lower() == "latest":
        return maximum
    version = APIVersion.parse(text)
    if not minimum <= version <= maximum:
        raise UnsupportedVersion(
            f"Version {version} is not supported by the API. Minimum is {minimum} and maximum "
            f"is {maximum}."
        )
    return version


class MicroversionMiddleware:
    """Negotiates the version of every /v2.1 request, stores it in scope["state"], and adds the
    version headers to the answer; a bad header gets nova's 400 or 406 before routing."""

    def __init__(self, app: ASGIApp, prefix: str = "/v2.1") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            version = negotiate(requested(headers))
        except (InvalidVersion, UnsupportedVersion) as exc:
            await _refuse(send, 400 if isinstance(exc, InvalidVersion) else 406, str(exc))
            return
        scope.setdefault("state", {})["api_version"] = version

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                out[HEADER] = f"{SERVICE_TYPE} {version}"
                out[LEGACY_HEADER] = str(version)
                out["Vary"] = f"{HEADER}, {LEGACY_HEADER}"
            await send(message)

        await self.app(scope, receive, send_with_version)


async def _refuse(send: Send, status: int, message: str) -> None:
    body = json.dumps(error_body(status, message)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
