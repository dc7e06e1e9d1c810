"""Links in responses: self/bookmark hrefs from [api] public_endpoint or the request URL."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from filemem.api.context import get_context


def base_url(request: Request) -> str:
    configured = get_context(request).public_endpoint
    return (configured or str(request.base_url)).rstrip("/")


def resource_links(request: Request, collection: str, ident: str) -> list[dict[str, Any]]:
    base = base_url(request)
    return [
        {"rel": "self", "href": f"{base}/v2.1/{collection}/{ident}"},
        {"rel": "bookmark", "href": f"{base}/{collection}/{ident}"},
    ]


def bookmark(request: Request, collection: str, ident: str) -> list[dict[str, Any]]:
    return [{"rel": "bookmark", "href": f"{base_url(request)}/{collection}/{ident}"}]
