"""nova's limit/marker pagination: the parameters' checks and the "next" collection link."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from filemem.api.errors import BadRequest
from filemem.api.links import base_url

# nova's [api] max_limit: the most one page holds.
MAX_LIMIT = 1000


def int_param(request: Request, name: str) -> int | None:
    """A non-negative integer query parameter (nova's common._get_int_param), or None."""
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"Invalid input received: {name} must be an integer.") from None
    if number < 0:
        raise BadRequest(f"Invalid input received: {name} must be >= 0.")
    return number


def page_size(request: Request) -> int:
    """nova's get_limit_and_marker: the limit asked for, at most MAX_LIMIT (0 means no limit)."""
    limit = int_param(request, "limit")
    return min(limit, MAX_LIMIT) if limit else MAX_LIMIT


def next_links(
    request: Request, items: list[dict[str, Any]], collection: str
) -> list[dict[str, str]]:
    """nova's _get_collection_links: a "next" link when the page is exactly full."""
    if not items or len(items) != page_size(request):
        return []
    params = dict(sorted(request.query_params.items()))
    params["marker"] = str(items[-1]["id"])
    href = f"{base_url(request)}/v2.1/{collection}?{urlencode(params)}"
    return [{"rel": "next", "href": href}]
