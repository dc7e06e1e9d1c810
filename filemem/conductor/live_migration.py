"""Live migration as nova's conductor runs it: prechecks, destination (scheduler or forced),
Placement moves (source allocation to a migration consumer, destination claimed for the
instance), the records the agents follow, and completion or rollback from their events."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from filemem.common import states
from filemem.common.agent_contract.reports import MigrationEvent
from filemem.common.page_size import avoids_file_backed_memory
from filemem.common.resources import IMAGE_MEM_PAGE_SIZE, MEM_PAGE_SIZE, guest_resources
from filemem.conductor import live_migration_checks as checks
from filemem.conductor.aggregates import placement_destination
from filemem.conductor.resize import MIGRATION_CONSUMER_TYPE
from filemem.conductor.servers import SchedulerProtocol, request_spec
from filemem.db import api as db_api
from filemem.db import instance_actions as actions_db
from filemem.db import server_migrations as migrations_db
from filemem.db.models import Instance, Migration, Service, utcnow
from filemem.db.session import Database
from filemem.exceptions import FilememError
from filemem.placement.client import (
    ConsumerGenerationConflict,
    InsufficientCapacity,
    PlacementClient,
)
from filemem.scheduler import NoValidHost, RequestSpec

LOG = logging.getLogger(__name__)

EVENT_PRECHECKS = "conductor_live_migrate_instance"
# The agents post compute_live_migration (source) and compute_post_live_migration_at_destination
# themselves, with their real times; the API records only a rollback, which it carries out.
EVENT_ROLLBACK = "compute_rollback_live_migration"
# How many scheduler picks may fail the prechecks before the request is refused.
MAX_PICKS = 3
TERMINAL = (
    migrations_db.COMPLETED,
    migrations_db.FAILED,
    migrations_db.CANCELLED,
    migrations_db.ERROR,
)


class LiveMigrationRefused(FilememError):
    """A precheck refused the move (nova's MigrationPreCheckError / NoValidHost): 400."""


class HostNotFound(LiveMigrationRefused):
    """The named destination is no compute host (nova's ComputeHostNotFound: 400 at once)."""


class InstanceBusy(FilememError):
    """The instance cannot start a move in its state (nova's InstanceInvalidState): 409."""


def host_facts(service: Service, down_after: dt.timedelta) -> checks.HostFacts:
    return checks.HostFacts(
        host=service.host,
        up=not service.forced_down and db_api.is_up(service, down_after),
        disabled=bool(service.disabled),
        file_backed_memory_mb=service.file_backed_memory_mb if service.file_backed else 0,
        capabilities=service.capabilities,
        store_free_mb=service.store_free_mb,
        migration_address=service.migration_address,
        provider_uuid=service.provider_uuid,
    )


def guest_facts(instance: Instance, image_page_size: str | None, busy: bool) -> checks.GuestFacts:
    page_size = (instance.extra_specs or {}).get(MEM_PAGE_SIZE)
    return checks.GuestFacts(
        uuid=instance.uuid,
        vm_state=instance.vm_state,
        task_state=instance.task_state,
        memory_mb=instance.memory_mb,
        wants_huge_pages=avoids_file_backed_memory(page_size, image_page_size),
        locked=instance.locked_by is not None,
        migration_in_progress=busy,
    )


@dataclass(frozen=True)
class Request:
    """What os-migrateLive asked, once validated for its microversion."""

    host: str | None
    force: bool
    block_migration: bool
    caller_is_admin: bool
    request_id: str
    project_id: str
    user_id: str


@dataclass
class LiveMigrationConductor:
    database: Database
    placement: PlacementClient
    scheduler: SchedulerProtocol
    down_after: dt.timedelta

    # -- start ---------------------------------------------------------------------------------

    def start(self, instance: Instance, ask: Request) -> Migration:
        """Claim the destination and hand the move to the agents; the queued migration.

        Raises InstanceBusy (409) or LiveMigrationRefused (400); nothing is left claimed then.
        """
        guest, source, dest = self._facts(instance, ask.host)
        refusal = checks.instance_refusal(guest, ask.caller_is_admin)
        if refusal is not None:
            raise InstanceBusy(refusal)
        if source is None or source.provider_uuid is None:
            raise LiveMigrationRefused(f"instance {instance.uuid} runs on no known host")
        if ask.host is not None:
            if dest is None:
                raise HostNotFound(f"Compute host {ask.host} could not be found.")
            refusal = checks.destination_refusal(guest, source, dest)
            if refusal is not None:
                raise LiveMigrationRefused(refusal)
        migration_uuid = str(uuidlib.uuid4())
        generation, held = self._source_allocation(instance, source.provider_uuid)
        if ask.host is not None and ask.force:
            assert dest is not None and dest.provider_uuid is not None
            self._claim_forced(instance, migration_uuid, (generation, held), dest.provider_uuid)
        else:
            self._first_move(instance, generation, {migration_uuid: held, instance.uuid: {}})
        try:
            if not ask.force or ask.host is None:
                dest = self._schedule(instance, guest, source, dest)
            migration = self._hand_over(instance, ask, migration_uuid, dest)
            if migration is None:
                raise InstanceBusy(f"instance {instance.uuid} changed state while it was migrated")
        except BaseException:
            # No migration row names the consumer: the source agent's heal would drop it, so
            # the source allocation goes back to the instance now, whatever failed.
            self._move(instance, {instance.uuid: held, migration_uuid: {}})
            raise
        return migration

    def _facts(
        self, instance: Instance, host: str | None
    ) -> tuple[checks.GuestFacts, checks.HostFacts | None, checks.HostFacts | None]:
        with self.database.reader() as session:
            image = db_api.get_image(session, instance.image_id)
            busy = migrations_db.in_progress(session, instance.uuid) is not None
            src = db_api.get_service_by_host(session, instance.host) if instance.host else None
            dst = db_api.get_service_by_host(session, host) if host else None
            image_page = image.property_value(IMAGE_MEM_PAGE_SIZE) if image else None
            return (
                guest_facts(instance, image_page, busy),
                host_facts(src, self.down_after) if src else None,
                host_facts(dst, self.down_after) if dst else None,
            )

    def _source_allocation(
        self, instance: Instance, provider: str
    ) -> tuple[int | None, dict[str, dict[str, int]]]:
        """The instance consumer's generation and its allocation on the source."""
        generation, current = self.placement.get_allocations(instance.uuid)
        if set(current) != {provider}:
            raise InstanceBusy(
                f"instance {instance.uuid} holds no allocation on its host's provider "
                f"{provider} alone ({sorted(current)}); another move may be under way"
            )
        return generation, {provider: dict(current[provider])}

    def _first_move(
        self,
        instance: Instance,
        generation: int | None,
        consumers: dict[str, dict[str, dict[str, int]]],
    ) -> None:
        """The move away from the source, at the generation the source allocation was read
        at: a concurrent request that moved it meanwhile makes this one a 409, never a
        second copy of the source allocation."""
        types = {c: MIGRATION_CONSUMER_TYPE for c in consumers if c != instance.uuid}
        generations: dict[str, int | None] = {c: None for c in consumers}
        generations[instance.uuid] = generation
        try:
            self.placement.move_allocations(
                consumers, generations, instance.project_id, instance.user_id, types
            )
        except ConsumerGenerationConflict as exc:
            raise InstanceBusy(
                f"instance {instance.uuid} changed while it was being migrated: {exc}"
            ) from exc

    def _move(self, instance: Instance, consumers: dict[str, dict[str, dict[str, int]]]) -> None:
        """One POST /allocations over these consumers (generations read just before)."""
        generations = {c: self.placement.get_allocations(c)[0] for c in consumers}
        types = {c: MIGRATION_CONSUMER_TYPE for c in consumers if c != instance.uuid}
        self.placement.move_allocations(
            consumers, generations, instance.project_id, instance.user_id, types
        )

    def _claim_forced(
        self,
        instance: Instance,
        migration_uuid: str,
        source: tuple[int | None, dict[str, dict[str, int]]],
        dest: str,
    ) -> None:
        """A forced host: the source moves to the migration and the destination is claimed
        for the instance in one write, so neither host under-counts at any moment."""
        wanted = guest_resources(instance.memory_mb, instance.vcpus, instance.root_gb)
        generation, held = source
        consumers = {migration_uuid: held, instance.uuid: {dest: wanted}}
        try:
            self._first_move(instance, generation, consumers)
        except InsufficientCapacity as exc:
            # Only no room is "No valid host"; Placement down or a race is not (503, 409).
            raise LiveMigrationRefused(
                f"{checks.NO_VALID_HOST} the destination does not fit the guest in Placement: {exc}"
            ) from exc

    def _schedule(
        self,
        instance: Instance,
        guest: checks.GuestFacts,
        source: checks.HostFacts,
        dest: checks.HostFacts | None,
    ) -> checks.HostFacts:
        """The scheduler claims a destination for the instance (restricted to `dest` when the
        caller named one); a pick the prechecks refuse is released and the next one tried."""
        excluded = {source.provider_uuid or ""}
        reasons: list[str] = []
        for _ in range(MAX_PICKS):
            spec = self._spec(instance, dest.host if dest else None, frozenset(excluded))
            try:
                selection = self.scheduler.select_and_claim(spec)
            except NoValidHost as exc:
                reasons.append(exc.reason)
                break
            with self.database.reader() as session:
                service = db_api.get_service_by_host(session, selection.host)
                picked = host_facts(service, self.down_after) if service else None
            refusal = (
                checks.destination_refusal(guest, source, picked)
                if picked
                else f"host {selection.host} is not registered"
            )
            if refusal is None and picked is not None:
                return picked
            reasons.append(refusal or "")
            self.placement.delete_allocations(instance.uuid)
            excluded.add(selection.provider_uuid)
            if dest is not None:
                break
        raise LiveMigrationRefused(f"{checks.NO_VALID_HOST} " + "; ".join(reasons))

    def _spec(self, instance: Instance, host: str | None, excluded: frozenset[str]) -> RequestSpec:
        member_of, in_tree = placement_destination(self.database, instance.availability_zone, host)
        with self.database.reader() as session:
            image = db_api.get_image(session, instance.image_id)
            properties = dict(image.properties or {}) if image else {}
        spec = request_spec(instance, properties, member_of, in_tree)
        return dataclasses.replace(spec, excluded_providers=excluded)

    def _hand_over(
        self, instance: Instance, ask: Request, migration_uuid: str, dest: checks.HostFacts | None
    ) -> Migration | None:
        assert dest is not None
        with self.database.session() as session:
            updated = db_api.update_instance(
                session,
                instance.uuid,
                {"task_state": states.MIGRATING},
                expect_vm_states=checks.MIGRATABLE,
                expect_task_states=[None],
                expect_not_deleting=True,
            )
            if updated is None:
                return None
            migration = migrations_db.create_migration(
                session,
                self._record(instance, ask, migration_uuid, dest.host, migrations_db.QUEUED),
            )
            action = actions_db.record_action(
                session,
                instance.uuid,
                actions_db.LIVE_MIGRATION,
                request_id=ask.request_id,
                project_id=ask.project_id,
                user_id=ask.user_id,
            )
            actions_db.add_event(session, action, EVENT_PRECHECKS, result=actions_db.SUCCESS)
            db_api.append_change(session, dest.host, instance.uuid)
            session.expunge(migration)
            return migration

    @staticmethod
    def _record(
        instance: Instance, ask: Request, migration_uuid: str, dest: str | None, status: str
    ) -> dict[str, Any]:
        return {
            "uuid": migration_uuid,
            "instance_uuid": instance.uuid,
            "migration_type": migrations_db.LIVE_MIGRATION,
            "status": status,
            "source_compute": instance.host,
            "dest_compute": dest,
            "old_flavor_id": instance.flavor_id,
            "new_flavor_id": instance.flavor_id,
            "project_id": instance.project_id,
            "user_id": instance.user_id,
            "block_migration": ask.block_migration,
        }

    def record_refusal(self, instance: Instance, ask: Request, reason: str) -> None:
        """From 2.34 the prechecks run after the 202 (nova's async prechecks): the refusal is
        the action's Error event and a migration in status error; the guest keeps running."""
        with self.database.session() as session:
            values = self._record(
                instance, ask, str(uuidlib.uuid4()), ask.host, migrations_db.ERROR
            )
            migrations_db.create_migration(session, {**values, "reason": reason})
            action = actions_db.record_action(
                session,
                instance.uuid,
                actions_db.LIVE_MIGRATION,
                request_id=ask.request_id,
                project_id=ask.project_id,
                user_id=ask.user_id,
            )
            actions_db.add_event(
                session, action, EVENT_PRECHECKS, result=actions_db.ERROR, traceback=reason
            )

    # -- the agents' events ----------------------------------------------------------------------

    def complete(self, migration_uuid: str) -> None:
        """The guest runs on the destination: it is the instance's host now, and the source
        allocation (held by the migration consumer) goes. Idempotent."""
        with self.database.session() as session:
            migration = migrations_db.get_by_uuid(session, migration_uuid)
            if migration is None or migration.status in TERMINAL:
                return
            db_api.update_instance(
                session,
                migration.instance_uuid,
                {"host": migration.dest_compute, "task_state": None},
                notify=False,
            )
            migration.dest_prepared = True
            migrations_db.set_status(session, migration, migrations_db.COMPLETED)
            self._event(session, migration, actions_db.SUCCESS, None)
            wake(session, migration)
            # In the transaction: if Placement fails the agent's event is retried.
            self.placement.delete_allocations(migration.uuid)

    def roll_back(self, migration_uuid: str, status: str, reason: str) -> None:
        """The guest stays on the source: one POST /allocations gives the source allocation
        back to the instance and drops the destination claim. Idempotent."""
        with self.database.session() as session:
            migration = migrations_db.get_by_uuid(session, migration_uuid)
            if migration is None or migration.status in TERMINAL:
                return
            instance = db_api.get_instance(session, migration.instance_uuid)
            db_api.update_instance(
                session,
                migration.instance_uuid,
                {"task_state": None},
                expect_task_states=[states.MIGRATING],
                notify=False,
            )
            migration.reason = reason
            migrations_db.set_status(session, migration, status)
            self._event(session, migration, actions_db.ERROR, reason)
            wake(session, migration)
            if instance is not None:
                self._give_back(instance, migration.uuid)

    def _give_back(self, instance: Instance, migration_uuid: str) -> None:
        _, held = self.placement.get_allocations(migration_uuid)
        if held:
            self._move(instance, {instance.uuid: held, migration_uuid: {}})

    @staticmethod
    def _event(session: Session, migration: Migration, result: str, reason: str | None) -> None:
        action = actions_db.latest_action(session, migration.instance_uuid)
        if action is not None and action.action == actions_db.LIVE_MIGRATION:
            if result != actions_db.SUCCESS:
                actions_db.add_event(
                    session,
                    action,
                    EVENT_ROLLBACK,
                    result=result,
                    host=migration.source_compute,
                    traceback=reason,
                )
            action.finish_time = utcnow()

    def on_event(self, migration_uuid: str, status: str, event: MigrationEvent) -> str:
        """One step an agent reported, on a migration read in `status`: completion,
        rollback, or progress stored. Terminal migrations ignore it. The status after it."""
        if status in TERMINAL:
            return status
        if event.event == "completed":
            self._store_progress(migration_uuid, event, {})
            self.complete(migration_uuid)
        elif event.event in ("failed", "cancelled"):
            status = migrations_db.FAILED if event.event == "failed" else migrations_db.CANCELLED
            self.roll_back(migration_uuid, status, event.reason or event.event)
        elif event.event == "prepared":
            self._store_progress(migration_uuid, event, {"dest_prepared": True})
        elif event.event == "started":
            self._store_progress(migration_uuid, event, {"status": migrations_db.RUNNING})
        else:
            self._store_progress(migration_uuid, event, {})
        with self.database.reader() as session:
            final = migrations_db.get_by_uuid(session, migration_uuid)
            return final.status if final else status

    def _store_progress(
        self, migration_uuid: str, event: MigrationEvent, values: dict[str, Any]
    ) -> None:
        """The event's memory figures and `values`; a change the agents see wakes both."""
        with self.database.session() as session:
            migration = migrations_db.get_by_uuid(session, migration_uuid)
            if migration is None or migration.status in TERMINAL:
                return
            for name in ("memory_total_bytes", "memory_processed_bytes", "memory_remaining_bytes"):
                value = getattr(event, name)
                if value is not None:
                    setattr(migration, name, value)
            for key, value in values.items():
                setattr(migration, key, value)
            migration.updated_at = utcnow()
            if values:
                # Progress alone changes nothing an agent acts on: no wake-up for it.
                wake(session, migration)

    def expire_if_host_down(self, migration_uuids: list[str]) -> int:
        """The lazy check: a queued or running migration whose destination is down (or whose
        source is down before it started) for longer than service_down_time fails."""
        failed = 0
        for migration_uuid in migration_uuids:
            with self.database.reader() as session:
                migration = migrations_db.get_by_uuid(session, migration_uuid)
                if migration is None or migration.status not in migrations_db.LIVE_IN_PROGRESS:
                    continue
                reason = self._down_reason(session, migration)
            if reason is not None:
                LOG.warning("live migration %s fails: %s", migration_uuid, reason)
                self.roll_back(migration_uuid, migrations_db.FAILED, reason)
                failed += 1
        return failed

    def _down_reason(self, session: Session, migration: Migration) -> str | None:
        now = utcnow()
        since = migration.updated_at or migration.created_at
        if now - since <= self.down_after:
            return None
        hosts = [("destination", migration.dest_compute)]
        if migration.status == migrations_db.QUEUED:
            # Once running, the guest may already be on the destination: only that host's
            # agent (or the source's) may say how it ended.
            hosts.append(("source", migration.source_compute))
        for role, host in hosts:
            service = db_api.get_service_by_host(session, host) if host else None
            if service is None or not host_facts(service, self.down_after).up:
                return f"{role} host {host} is down"
        return None


def wake(session: Session, migration: Migration) -> None:
    """Both agents' long-polls return: the source's and the destination's view changed."""
    for host in {migration.source_compute, migration.dest_compute}:
        if host:
            db_api.append_change(session, host, migration.instance_uuid)
