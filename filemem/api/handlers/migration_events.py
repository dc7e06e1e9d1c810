"""Live migration on the agent API: what the source and destination agents see of a move in
their instance views, and POST /filemem/v1/migrations/{uuid}/events, the steps they report."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from fastapi import Path, Request
from sqlalchemy.orm import Session

from filemem.api.context import ApiContext, get_context
from filemem.api.errors import Conflict, Gone
from filemem.api.identity import get_caller
from filemem.common import agent_wire
from filemem.common.agent_contract.answers import (
    IncomingMigrationView,
    LiveMigrationView,
    MigrationEventAnswer,
)
from filemem.common.agent_contract.reports import MigrationEvent
from filemem.db import api as db_api
from filemem.db import server_migrations as migrations_db
from filemem.db.models import Instance, Migration, Service

MigrationUuidPath = Annotated[str, Path(max_length=36)]


@dataclass(frozen=True)
class LiveFields:
    """An instance view's live migration objects: the source's, the destination's."""

    live_migration: LiveMigrationView | None = None
    incoming_migration: IncomingMigrationView | None = None


def source_view(migration: Migration, dest_host: str, dest: Service | None) -> LiveMigrationView:
    """The contract's `live_migration` object of the source host's instance view."""
    file_backed_mb = dest.file_backed_memory_mb if dest is not None and dest.file_backed else 0
    address = (dest.migration_address if dest is not None else None) or dest_host
    return LiveMigrationView(
        migration_uuid=migration.uuid,
        dest_host=dest_host,
        dest_address=address,
        dest_file_backed_memory_mb=file_backed_mb,
        block_migration=bool(migration.block_migration),
        dest_prepared=bool(migration.dest_prepared),
        force_complete=bool(migration.force_complete),
        abort=bool(migration.abort_requested),
    )


def live_fields(
    session: Session, host: str, instances: Sequence[Instance]
) -> dict[str, LiveFields]:
    """Instance uuid -> its live_migration and incoming_migration objects for `host`'s view.
    A live migration always names both hosts (the conductor writes them on creation)."""
    moves = migrations_db.live_by_instance(session, [instance.uuid for instance in instances])
    services = {s.host: s for s in db_api.list_services(session)}
    fields: dict[str, LiveFields] = {}
    for instance in instances:
        migration = moves.get(instance.uuid)
        if migration is None or migration.source_compute is None or not migration.dest_compute:
            fields[instance.uuid] = LiveFields()
        elif migration.source_compute == host:
            dest = migration.dest_compute
            fields[instance.uuid] = LiveFields(
                live_migration=source_view(migration, dest, services.get(dest))
            )
        elif migration.dest_compute == host:
            incoming = IncomingMigrationView(
                migration_uuid=migration.uuid, source_host=migration.source_compute
            )
            fields[instance.uuid] = LiveFields(incoming_migration=incoming)
        else:
            fields[instance.uuid] = LiveFields()
    return fields


def expire_stale(ctx: ApiContext, host: str) -> None:
    """The lazy check at a host's watch: its moves whose other host is down fail."""
    with ctx.database.reader() as session:
        uuids = [row.uuid for row in migrations_db.live_in_progress_on(session, host)]
    if uuids:
        ctx.live_migration_conductor.expire_if_host_down(uuids)


def record_migration_event(
    request: Request, migration_uuid: MigrationUuidPath, body: MigrationEvent
) -> MigrationEventAnswer:
    """POST /filemem/v1/migrations/{uuid}/events: 200 with the migration's status after it.
    Terminal migrations ignore later events; an unknown one is a 404 with the gone marker
    (X-Filemem-Gone: migration); 409 from an unrelated host."""
    ctx = get_context(request)
    with ctx.database.reader() as session:
        migration = migrations_db.get_by_uuid(session, migration_uuid)
        if migration is None or migration.migration_type != migrations_db.LIVE_MIGRATION:
            raise Gone(agent_wire.MIGRATION, migration_uuid)
        status = migration.status
        hosts = (migration.source_compute, migration.dest_compute)
    caller_host = get_caller(request).host
    if caller_host is not None and caller_host not in hosts:
        raise Conflict(
            f"host {caller_host} is neither the source nor the destination of migration "
            f"{migration_uuid}"
        )
    final_status = ctx.live_migration_conductor.on_event(migration_uuid, status, body)
    return MigrationEventAnswer(migration_uuid=migration_uuid, status=final_status)
