"""Unit-test fixtures: `api`, an in-process filemem-api (see tests/unit/api_app.py)."""

from __future__ import annotations

from tests.unit.api_app import api

__all__ = ["api"]
