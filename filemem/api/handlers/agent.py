"""Agent API (/filemem/v1): register a host, long-poll its instances, report, confirm gone,
answer console requests, record instance-action events."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import Path, Query, Request, Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from filemem.api.change_feed import closed_on_disconnect, recheck_delay
from filemem.api.context import ApiContext, get_context
from filemem.api.errors import Conflict, Gone
from filemem.api.handlers import migration_events, network_views, server_snapshot
from filemem.api.handlers.server_views import agent_view
from filemem.api.handlers.servers import ServerIdPath
from filemem.api.identity import get_caller
from filemem.api.schemas.common import HostName, is_uuid
from filemem.common import agent_wire, states
from filemem.common.agent_contract import CONTRACT_VERSION
from filemem.common.agent_contract.answers import (
    AgentInstance,
    MemoryUsageAnswer,
    RegistrationAnswer,
    ServiceView,
    WatchAnswer,
)
from filemem.common.agent_contract.reports import (
    ConsoleOutput,
    InstanceEventReport,
    InstanceReport,
    MemoryUsageReport,
    ServiceUpdate,
    utc_naive,
)
from filemem.common.aggregates import registration_refusal
from filemem.conductor import aggregates as aggregate_mirror
from filemem.conductor import registration
from filemem.db import aggregates as db_aggregates
from filemem.db import api as db_api
from filemem.db import instance_actions
from filemem.db import server_migrations as migrations_db
from filemem.db.models import Instance, Migration, Service, utcnow

HostPath = Annotated[HostName, Path()]
MAX_WAIT = 30


def service_view(service: Service) -> ServiceView:
    seen = service.last_seen_at.isoformat() if service.last_seen_at else None
    return ServiceView(
        id=service.id,
        host=service.host,
        binary=service.binary,
        disabled=service.disabled,
        disabled_reason=service.disabled_reason,
        provider_uuid=service.provider_uuid,
        file_backed=service.file_backed,
        file_backed_memory_mb=service.file_backed_memory_mb,
        capabilities=service.capabilities,
        version=service.version,
        migration_address=service.migration_address,
        store_free_mb=service.store_free_mb,
        last_seen_at=seen,
    )


def register_service(request: Request, host: HostPath, body: ServiceUpdate) -> RegistrationAnswer:
    """PUT /filemem/v1/services/{host}: register or heartbeat; 200 with the service and the
    MEMORY_MB allocation ratio the host's aggregates give it (null: its own). 409 when the
    host has file-backed memory but is in an aggregate whose ram_allocation_ratio is not
    1.0: the agent refuses to start; 409 too for another host's resource provider. The
    reported capacity is capped at what Placement holds for the provider. Placement's
    aggregates are repaired to match."""
    ctx = get_context(request)
    values = body.model_dump()
    # Read before the transaction: no database transaction waits on Placement.
    facts = registration.provider_facts(ctx.placement, body.provider_uuid)
    values["file_backed_memory_mb"], values["store_free_mb"] = registration.trusted_capacity(
        body.file_backed_memory_mb, body.store_free_mb, facts.memory
    )
    with ctx.database.session() as session:
        if body.file_backed:
            memberships = [db_aggregates.facts(a) for a in db_aggregates.for_host(session, host)]
            refusal = registration_refusal(host, memberships)
            if refusal is not None:
                raise Conflict(refusal)
        _check_provider(session, host, body.provider_uuid, facts.name)
        before = db_api.get_service_by_host(session, host)
        known = before is not None and before.provider_uuid == values["provider_uuid"]
        try:
            service = db_api.upsert_service(session, host, values)
        except IntegrityError:
            # Another host registered the provider between our check and our write.
            raise Conflict(_provider_owner_refusal(ctx, host, body.provider_uuid)) from None
        view = service_view(service)
    if not known:
        # A new host (or a new provider) can take guests at once in this process.
        ctx.scheduler.invalidate_hosts()
    want = aggregate_mirror.wanted(ctx.database, host)
    if want is not None:
        aggregate_mirror.mirror(ctx.placement, want)
    ratio = want.ram_allocation_ratio if want is not None and not body.file_backed else None
    return RegistrationAnswer(
        contract_version=CONTRACT_VERSION, service=view, ram_allocation_ratio=ratio
    )


def _check_provider(session: Session, host: str, provider: str, name: str | None) -> None:
    """409 when the provider is another host's: its row holds it, or Placement names it after
    another registered host."""
    owner = db_api.get_service_by_provider(session, provider)
    named = name is not None and db_api.get_service_by_host(session, name) is not None
    refusal = registration.provider_refusal(
        host,
        provider,
        owner.host if owner is not None else None,
        name,
        frozenset({name}) if named and name is not None else frozenset(),
    )
    if refusal is not None:
        raise Conflict(refusal)


def _provider_owner_refusal(ctx: ApiContext, host: str, provider: str) -> str:
    with ctx.database.reader() as session:
        owner = db_api.get_service_by_provider(session, provider)
    refusal = registration.provider_refusal(
        host, provider, owner.host if owner is not None else "another host", None
    )
    return refusal or f"Resource provider {provider} is registered by another host."


def _latest(ctx: ApiContext, host: str) -> int:
    with ctx.database.reader() as session:
        return db_api.latest_change(session, host)


def _snapshot(ctx: ApiContext, host: str) -> WatchAnswer:
    """The cursor first, then the set: the set is never older than the cursor says. The set
    includes the instances live-migrating to the host (their host is still the source)."""
    with ctx.database.session() as session:
        # A watching agent is alive: this is its heartbeat as much as the PUT.
        db_api.touch_service(session, host)
    migration_events.expire_stale(ctx, host)
    with ctx.database.reader() as session:
        cursor = db_api.latest_change(session, host)
        instances = [
            *reversed(db_api.list_instances(session, host=host)),
            *migrations_db.incoming_instances(session, host),
        ]
        images = {
            image.id: image
            for image in db_api.list_images(session, {i.image_id for i in instances})
        }
        moves = _unfinished_migrations(session, [i.uuid for i in instances])
        live = migration_events.live_fields(session, host, instances)
        ports = ctx.network.ports_of(session, [i.uuid for i in instances])
        views = [
            agent_view(
                i,
                images.get(i.image_id),
                moves.get(i.uuid, []),
                live[i.uuid].live_migration,
                live[i.uuid].incoming_migration,
                [network_views.nic_view(port) for port in ports.get(i.uuid, [])],
            )
            for i in instances
        ]
    return WatchAnswer(contract_version=CONTRACT_VERSION, cursor=cursor, instances=views)


def _unfinished_migrations(session: Session, uuids: list[str]) -> dict[str, list[str]]:
    """Instance uuid -> the uuids of its moves still holding an allocation (their consumers)."""
    if not uuids:
        return {}
    query = (
        select(Migration.instance_uuid, Migration.uuid)
        .where(
            Migration.instance_uuid.in_(uuids),
            Migration.status.in_(migrations_db.IN_PROGRESS),
        )
        .order_by(Migration.id)
    )
    moves: dict[str, list[str]] = {}
    for instance_uuid, migration_uuid in session.execute(query):
        moves.setdefault(instance_uuid, []).append(migration_uuid)
    return moves


async def watch_instances(
    request: Request,
    host: HostPath,
    since: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT)] = 0,
) -> WatchAnswer:
    """GET /filemem/v1/hosts/{host}/instances: at once when changed since `since`, else after
    up to `wait` seconds; always the full desired set of the host. A commit that changes the
    host wakes the wait (ctx.changes); the database is re-read on waking and, as a safety
    net, at most every ctx.long_poll_interval seconds (jittered)."""
    ctx = get_context(request)
    if since is None or wait <= 0:
        return await run_in_threadpool(_snapshot, ctx, host)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    with ctx.changes.subscribe(host) as waiter:
        async with closed_on_disconnect(request, waiter):
            while True:
                # Armed before the read: a commit landing during it still wakes the wait.
                waiter.arm()
                # Any difference counts: a cursor from the future means the database was
                # replaced.
                if await run_in_threadpool(_latest, ctx, host) != since:
                    break
                remaining = deadline - loop.time()
                if remaining <= 0 or waiter.closed:
                    break
                await waiter.wait(min(recheck_delay(ctx.long_poll_interval), remaining))
    return await run_in_threadpool(_snapshot, ctx, host)


def report_memory_usage(
    request: Request, host: HostPath, body: MemoryUsageReport
) -> MemoryUsageAnswer:
    """PUT /filemem/v1/hosts/{host}/memory-usage: working sets; instances of other hosts are
    ignored (an agent speaks for its own host only)."""
    usage = {uuid: report.model_dump() for uuid, report in body.guests.items()}
    with get_context(request).database.session() as session:
        stored = db_api.set_memory_usage(session, host, usage)
    return MemoryUsageAnswer(stored=stored, ignored=len(usage) - stored)


def _find(session: Session, server_id: str) -> Instance:
    """The instance; Gone (404 with the X-Filemem-Gone marker) when there is none."""
    instance = db_api.get_instance(session, server_id) if is_uuid(server_id) else None
    if instance is None:
        raise Gone(agent_wire.INSTANCE, server_id)
    return instance


def report_instance(
    request: Request, server_id: ServerIdPath, body: InstanceReport
) -> AgentInstance:
    """PATCH /filemem/v1/instances/{uuid}: observed state; 404 with the gone marker when the
    instance is gone."""
    values = body.values()
    ctx = get_context(request)
    with ctx.database.session() as session:
        instance = _find(session, server_id)
        task_before, snapshot_image_id = instance.task_state, instance.snapshot_image_id
        if instance.deleted_requested or instance.task_state == states.MIGRATING:
            # A late report must not un-delete: the deletion keeps its task_state. A live
            # migration's task_state is the API's, ended by the migration's events.
            values.pop("task_state", None)
        if values.get("vm_state") == states.ACTIVE and instance.launched_at is None:
            values["launched_at"] = utcnow()
        updated = db_api.update_instance(session, instance.uuid, values, notify=False)
        if updated is None:
            raise Gone(agent_wire.INSTANCE, server_id)
        unstored: list[str] = []
        if task_before == states.IMAGE_SNAPSHOT and updated.task_state != task_before:
            unstored = server_snapshot.finish(session, updated, snapshot_image_id)
        image = db_api.get_image(session, updated.image_id)
        ports = ctx.network.ports_of(session, [updated.uuid]).get(updated.uuid, [])
        view = agent_view(updated, image, nics=[network_views.nic_view(p) for p in ports])
    server_snapshot.remove_stored(ctx, unstored)
    ctx.resize_conductor.on_report(updated.uuid, task_before, updated)
    return view


def instance_gone(request: Request, server_id: ServerIdPath) -> Response:
    """POST /filemem/v1/instances/{uuid}/gone: the agent destroyed it; drop allocation + row."""
    ctx = get_context(request)
    with ctx.database.session() as session:
        instance = db_api.get_instance(session, server_id) if is_uuid(server_id) else None
        if instance is None:
            # Already gone: an agent that restarted may confirm twice.
            return Response(status_code=204)
        if not instance.deleted_requested:
            raise Conflict(f"Instance {instance.uuid} was not asked to be deleted")
        # The row is deleted in this transaction, after Placement: if Placement fails, the row
        # (and the agent's reason to retry) stays.
        ctx.placement.delete_allocations(instance.uuid)
        ctx.resize_conductor.forget(session, instance.uuid)
        db_api.delete_instance(session, instance.uuid)
    return Response(status_code=204)


def report_console(request: Request, server_id: ServerIdPath, body: ConsoleOutput) -> Response:
    """PUT /filemem/v1/instances/{uuid}/console: store the tail the agent read; the request is
    cleared only when it is still the one answered (a newer one waits for the next answer).
    204; 404 with the gone marker when the instance is gone."""
    requested_at = utc_naive(body.requested_at)
    ctx = get_context(request)
    with ctx.database.session() as session:
        instance = _find(session, server_id)
        db_api.store_console_output(session, instance.uuid, body.output, requested_at)
    # Committed: this process's waiting console requests read it now, not at their re-read.
    ctx.console_answers.wake([instance.uuid])
    return Response(status_code=204)


def record_event(request: Request, server_id: ServerIdPath, body: InstanceEventReport) -> Response:
    """POST /filemem/v1/instances/{uuid}/events: one step of the agent, attached to the
    instance's newest action with the instance's host; 204 (nothing stored without an action,
    as for an instance the API no longer knows)."""
    if not is_uuid(server_id):
        raise Gone(agent_wire.INSTANCE, server_id)
    with get_context(request).database.session() as session:
        action = instance_actions.latest_action(session, server_id)
        if action is None:
            return Response(status_code=204)
        instance = db_api.get_instance(session, server_id)
        if instance is None and get_caller(request).host is not None:
            # A host speaks only for instances it can be shown to run (agent_authz).
            return Response(status_code=204)
        instance_actions.add_event(
            session,
            action,
            body.event,
            result=body.result,
            host=instance.host if instance is not None else None,
            start_time=utc_naive(body.start_time),
            finish_time=utc_naive(body.finish_time),
            traceback=body.traceback,
        )
    return Response(status_code=204)
