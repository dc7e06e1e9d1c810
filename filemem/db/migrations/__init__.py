"""Alembic migrations of filemem's database (run with filemem.db.migrate.upgrade)."""
