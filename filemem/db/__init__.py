"""filemem-api's database: models, query functions, sessions and migrations."""

from __future__ import annotations

from filemem.db.session import Database

__all__ = ["Database"]
