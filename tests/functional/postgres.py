"""The throwaway PostgreSQL cluster for tests (it lives in devtools.postgres)."""

from __future__ import annotations

from devtools.postgres import OWNER, PG_BIN, PostgresCluster

__all__ = ["OWNER", "PG_BIN", "PostgresCluster"]
