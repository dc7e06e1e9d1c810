"""filemem-api: the Compute API v2.1 subset, the agent API and the scheduling of new servers."""

from __future__ import annotations

from filemem.api.app import create_app
from filemem.api.context import ApiContext

__all__ = ["ApiContext", "create_app"]
