"""os-migrations and /servers/{id}/migrations in nova's shapes (resizes now; the per-server
routes list live migrations only, as nova's do)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Query, Request

from filemem.api import policy
from filemem.api.context import get_context
from filemem.api.errors import NotFound
from filemem.api.handlers.server_views import iso
from filemem.api.handlers.servers import ServerIdPath, find_visible
from filemem.api.identity import get_caller
from filemem.api.microversion import at_least, require
from filemem.api.policies import compute as policies
from filemem.db import server_migrations as migrations_db
from filemem.db.models import Migration

Filter = Annotated[str | None, Query(max_length=255)]
MigrationIdPath = Annotated[str, Path(max_length=255)]


def needs(request: Request, version: str) -> None:
    """nova's 404 for a method its microversion does not have yet, saying which it needs."""
    require(
        request,
        version,
        f"{request.method} {request.url.path} needs microversion {version} or later "
        f"(OpenStack-API-Version: compute {version})",
    )


def migration_view(request: Request, row: Migration) -> dict[str, Any]:
    view: dict[str, Any] = {
        "id": row.id,
        "instance_uuid": row.instance_uuid,
        "status": row.status,
        "source_compute": row.source_compute,
        "source_node": row.source_compute,
        "dest_compute": row.dest_compute,
        "dest_node": row.dest_compute,
        "dest_host": row.dest_compute,
        "old_instance_type_id": row.old_flavor_id,
        "new_instance_type_id": row.new_flavor_id,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }
    if at_least(request, "2.23"):
        view["migration_type"] = row.migration_type
    return view


def list_migrations(
    request: Request,
    host: Filter = None,
    status: Filter = None,
    instance_uuid: Filter = None,
    migration_type: Filter = None,
) -> dict[str, Any]:
    """GET /os-migrations, newest first."""
    with get_context(request).database.reader() as session:
        rows = migrations_db.list_migrations(
            session,
            host=host,
            status=status,
            instance_uuid=instance_uuid,
            migration_type=migration_type if at_least(request, "2.23") else None,
        )
        # A project manager sees its own project's migrations (nova's index:all_projects).
        if not policy.allowed(request, policies.MIGRATIONS_ALL_PROJECTS):
            project = get_caller(request).project_id
            rows = [row for row in rows if row.project_id == project]
        return {"migrations": [migration_view(request, row) for row in rows]}


def list_server_migrations(request: Request, server_id: ServerIdPath) -> dict[str, Any]:
    """GET /servers/{id}/migrations (2.23): the live migrations in progress."""
    needs(request, "2.23")
    with get_context(request).database.reader() as session:
        instance = find_visible(request, session, server_id)
        rows = migrations_db.list_migrations(
            session,
            instance_uuid=instance.uuid,
            migration_type=migrations_db.LIVE_MIGRATION,
            statuses=migrations_db.IN_PROGRESS,
        )
        return {"migrations": [migration_view(request, row) for row in rows]}


def _not_found(server_id: str, migration_id: str) -> NotFound:
    return NotFound(f"Migration {migration_id} not found for instance {server_id}")


def show_server_migration(
    request: Request, server_id: ServerIdPath, migration_id: MigrationIdPath
) -> dict[str, Any]:
    """GET /servers/{id}/migrations/{mid} (2.23): a live migration in progress."""
    needs(request, "2.23")
    with get_context(request).database.reader() as session:
        instance = find_visible(request, session, server_id)
        rows = migrations_db.list_migrations(
            session,
            instance_uuid=instance.uuid,
            migration_type=migrations_db.LIVE_MIGRATION,
            statuses=migrations_db.IN_PROGRESS,
        )
        for row in rows:
            if str(row.id) == migration_id:
                return {"migration": migration_view(request, row)}
    raise _not_found(server_id, migration_id)


def _no_live_migration(request: Request, server_id: str, migration_id: str) -> NotFound:
    # filemem does not live-migrate yet, so no migration of a server is ever in progress.
    with get_context(request).database.reader() as session:
        find_visible(request, session, server_id)
    return _not_found(server_id, migration_id)


def force_complete(
    request: Request, server_id: ServerIdPath, migration_id: MigrationIdPath
) -> None:
    """POST /servers/{id}/migrations/{mid}/action force_complete (2.22)."""
    needs(request, "2.22")
    raise _no_live_migration(request, server_id, migration_id)


def abort(request: Request, server_id: ServerIdPath, migration_id: MigrationIdPath) -> None:
    """DELETE /servers/{id}/migrations/{mid} (2.24): abort a live migration."""
    needs(request, "2.24")
    raise _no_live_migration(request, server_id, migration_id)
