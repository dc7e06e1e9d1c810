"""os-aggregates: filemem has no host aggregates; the empty list lets `hypervisor show` work."""

from __future__ import annotations

from typing import Any


def list_aggregates() -> dict[str, Any]:
    """GET /os-aggregates: always empty."""
    return {"aggregates": []}
