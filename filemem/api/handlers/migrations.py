"""os-migrations and /servers/{id}/migrations in nova's shapes (the per-server routes list
live migrations in progress only, as nova's do), force_complete (2.22) and abort (2.24)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Path, Query, Request

from filemem.api import policy
from filemem.api.context import get_context
from filemem.api.errors import BadRequest, Conflict, NotFound
from filemem.api.handlers.server_views import iso
from filemem.api.handlers.servers import ServerIdPath, find_visible
from filemem.api.identity import get_caller
from filemem.api.microversion import at_least, require
from filemem.api.policies import compute as policies
from filemem.common import states
from filemem.conductor import live_migration as live
from filemem.db import server_migrations as migrations_db
from filemem.db.models import Migration, utcnow

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
    # Why a move failed is not here (nova's shape has no room for it, and Tempest checks):
    # admins read it in the live-migration action's Error event (os-instance-actions).
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


def server_migration_view(request: Request, row: Migration) -> dict[str, Any]:
    """nova's view of a server's live migration (2.23), with the agent's memory figures."""
    return {
        "id": row.id,
        "server_uuid": row.instance_uuid,
        "status": row.status,
        "source_compute": row.source_compute,
        "source_node": row.source_compute,
        "dest_compute": row.dest_compute,
        "dest_host": row.dest_compute,
        "dest_node": row.dest_compute,
        "memory_total_bytes": row.memory_total_bytes,
        "memory_processed_bytes": row.memory_processed_bytes,
        "memory_remaining_bytes": row.memory_remaining_bytes,
        # filemem's disks stay where they are (the guest's memory is what moves).
        "disk_total_bytes": 0 if row.memory_total_bytes is not None else None,
        "disk_processed_bytes": 0 if row.memory_total_bytes is not None else None,
        "disk_remaining_bytes": 0 if row.memory_total_bytes is not None else None,
        "created_at": iso(row.created_at),
        "updated_at": iso(row.updated_at),
    }


def _live_in_progress(request: Request, server_id: str) -> list[Migration]:
    """The server's queued or running live migrations, after the lazy host-down check."""
    ctx = get_context(request)
    with ctx.database.reader() as session:
        instance = find_visible(request, session, server_id)
        uuids = [
            row.uuid
            for row in migrations_db.list_migrations(
                session,
                instance_uuid=instance.uuid,
                migration_type=migrations_db.LIVE_MIGRATION,
                statuses=migrations_db.LIVE_IN_PROGRESS,
            )
        ]
    if uuids:
        ctx.live_migration_conductor.expire_if_host_down(uuids)
    with ctx.database.reader() as session:
        rows = migrations_db.list_migrations(
            session,
            instance_uuid=instance.uuid,
            migration_type=migrations_db.LIVE_MIGRATION,
            statuses=migrations_db.LIVE_IN_PROGRESS,
        )
        for row in rows:
            session.expunge(row)
        return rows


def list_server_migrations(request: Request, server_id: ServerIdPath) -> dict[str, Any]:
    """GET /servers/{id}/migrations (2.23): the live migrations in progress."""
    needs(request, "2.23")
    rows = _live_in_progress(request, server_id)
    return {"migrations": [server_migration_view(request, row) for row in rows]}


def _not_found(server_id: str, migration_id: str) -> NotFound:
    return NotFound(f"Migration {migration_id} not found for instance {server_id}")


def show_server_migration(
    request: Request, server_id: ServerIdPath, migration_id: MigrationIdPath
) -> dict[str, Any]:
    """GET /servers/{id}/migrations/{mid} (2.23): a live migration in progress."""
    needs(request, "2.23")
    for row in _live_in_progress(request, server_id):
        if str(row.id) == migration_id:
            return {"migration": server_migration_view(request, row)}
    raise _not_found(server_id, migration_id)


def _live_migration(
    request: Request, server_id: str, migration_id: str, method: str, statuses: tuple[str, ...]
) -> Migration:
    """The server's live migration `migration_id`: 404 unknown, 400 in a status that `method`
    cannot act on (nova's InvalidMigrationState), 409 when the server is not migrating."""
    with get_context(request).database.reader() as session:
        instance = find_visible(request, session, server_id)
        row = None
        if migration_id.isascii() and migration_id.isdigit():
            for candidate in migrations_db.list_migrations(
                session, instance_uuid=instance.uuid, migration_type=migrations_db.LIVE_MIGRATION
            ):
                if candidate.id == int(migration_id):
                    row = candidate
        if row is None:
            raise _not_found(server_id, migration_id)
        if row.status not in statuses:
            raise BadRequest(
                f"Migration {migration_id} state of instance {instance.uuid} is {row.status}. "
                f"Cannot {method} while the migration is in this state."
            )
        if instance.task_state != states.MIGRATING:
            raise Conflict(
                f"Cannot '{method}' instance {instance.uuid} while it is in task_state "
                f"{instance.task_state}"
            )
        session.expunge(row)
        return row


def _request(request: Request, migration: Migration, values: dict[str, Any]) -> None:
    """Store a request for the source agent and wake both agents."""
    with get_context(request).database.session() as session:
        row = migrations_db.get_by_uuid(session, migration.uuid)
        if row is None:
            return
        for key, value in values.items():
            setattr(row, key, value)
        row.updated_at = utcnow()
        live.wake(session, row)


def force_complete(
    request: Request,
    server_id: ServerIdPath,
    migration_id: MigrationIdPath,
    body: Annotated[dict[str, Any], Body()],
) -> None:
    """POST /servers/{id}/migrations/{mid}/action force_complete (2.22): the source agent
    pauses the guest so the copy converges; 400 unless the migration is running."""
    needs(request, "2.22")
    if set(body) != {"force_complete"} or body["force_complete"] is not None:
        raise BadRequest(
            "Invalid input for field/attribute force_complete: the body must be "
            '{"force_complete": null}'
        )
    migration = _live_migration(
        request, server_id, migration_id, "force_complete", (migrations_db.RUNNING,)
    )
    _request(request, migration, {"force_complete": True})


def abort(request: Request, server_id: ServerIdPath, migration_id: MigrationIdPath) -> None:
    """DELETE /servers/{id}/migrations/{mid} (2.24): the source agent aborts the move and
    reports it cancelled; 400 unless queued or running."""
    needs(request, "2.24")
    migration = _live_migration(
        request, server_id, migration_id, "abort live migration", migrations_db.LIVE_IN_PROGRESS
    )
    _request(request, migration, {"abort_requested": True})
