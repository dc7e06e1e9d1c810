"""Resize on the instance's host, as nova does it in Placement: until the user confirms, a
migration consumer holds the old flavor's allocation and the instance holds the new one; a
revert moves the old allocation back in one write."""

from __future__ import annotations

import dataclasses
import logging
import uuid as uuidlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from filemem.common import quota as quota_rules
from filemem.common import states
from filemem.common.resources import guest_resources
from filemem.conductor.servers import SchedulerProtocol, request_spec
from filemem.db import api as db_api
from filemem.db import projects as db_projects
from filemem.db import server_migrations as migrations_db
from filemem.db.models import Flavor, Instance
from filemem.db.session import Database
from filemem.exceptions import FilememError
from filemem.placement.client import (
    ConsumerGenerationConflict,
    InsufficientCapacity,
    PlacementClient,
)
from filemem.scheduler.request import RequestSpec

LOG = logging.getLogger(__name__)

MIGRATION_CONSUMER_TYPE = "MIGRATION"
RESIZABLE = (states.ACTIVE, states.STOPPED)


class ResizeRefused(FilememError):
    """The resize cannot start (no room on the host, no allocation to move)."""


class InstanceChanged(ResizeRefused):
    """The instance left the state the request was checked against (a race): 409."""


class ResizeOverQuota(ResizeRefused):
    """Counted again under the project's lock, the new flavor passes a quota: 403."""


def flavor_of(instance: Instance) -> dict[str, Any]:
    """The instance's own copy of its flavor, as old_flavor keeps it."""
    return {
        "flavor_id": instance.flavor_id,
        "flavor_name": instance.flavor_name,
        "vcpus": instance.vcpus,
        "memory_mb": instance.memory_mb,
        "root_gb": instance.root_gb,
        "extra_specs": dict(instance.extra_specs or {}),
    }


def flavor_columns(flavor: Flavor) -> dict[str, Any]:
    return {
        "flavor_id": flavor.flavorid,
        "flavor_name": flavor.name,
        "vcpus": flavor.vcpus,
        "memory_mb": flavor.memory_mb,
        "root_gb": flavor.root_gb,
        "extra_specs": flavor.specs(),
    }


def _check_quota(
    session: Session, instance: Instance, flavor: Flavor, limits: quota_rules.Limits
) -> None:
    db_projects.lock_usage(session, instance.project_id)
    used = db_projects.usage(session, instance.project_id).as_dict()
    # The row as committed now: the request's copy may predate another change of its flavor.
    current = db_api.get_instance(session, instance.uuid) or instance
    old, new = (current.vcpus, current.memory_mb), (flavor.vcpus, flavor.memory_mb)
    try:
        quota_rules.check_resize(limits, used, old, new)
    except quota_rules.OverQuota as exc:
        raise ResizeOverQuota(str(exc)) from exc


def resized_spec(
    instance: Instance, flavor: Flavor, image_properties: dict[str, str]
) -> RequestSpec:
    """The instance's request spec with the new flavor's sizes and extra specs."""
    return dataclasses.replace(
        request_spec(instance, image_properties),
        memory_mb=flavor.memory_mb,
        vcpus=flavor.vcpus,
        disk_gb=flavor.root_gb,
        extra_specs=flavor.specs(),
    )


@dataclass
class ResizeConductor:
    database: Database
    placement: PlacementClient
    # The scheduler's filters for the new flavor on the instance's own host (nova runs the
    # scheduler for a resize too). Required: a conductor without it would skip them.
    scheduler: SchedulerProtocol

    def start(
        self, instance: Instance, flavor: Flavor, limits: quota_rules.Limits | None = None
    ) -> str:
        """Swap the allocations, then hand the new flavor to the agent; the migration's uuid.

        Placement first: if the API dies after it, the agent's heal drops the migration
        consumer (no migration row names it) and the instance keeps running its old flavor.
        With `limits`, the project's cores and ram are counted again in the hand-over's
        transaction, under the project's lock, so two resizes cannot pass the quota together.
        """
        generation, current = self.placement.get_allocations(instance.uuid)
        if len(current) != 1:
            raise ResizeRefused(
                f"instance {instance.uuid} holds no allocation on one host ({len(current)} "
                "providers); it cannot be resized"
            )
        ((provider, old_resources),) = current.items()
        self._check_filters(instance, flavor, provider)
        migration_uuid = str(uuidlib.uuid4())
        new_resources = guest_resources(flavor.memory_mb, flavor.vcpus, flavor.root_gb)
        try:
            self.placement.move_allocations(
                {
                    migration_uuid: {provider: old_resources},
                    instance.uuid: {provider: new_resources},
                },
                {migration_uuid: None, instance.uuid: generation},
                instance.project_id,
                instance.user_id,
                {migration_uuid: MIGRATION_CONSUMER_TYPE},
            )
        except InsufficientCapacity as exc:
            raise ResizeRefused(
                f"No valid host was found. Flavor {flavor.name} does not fit on host "
                f"{instance.host} next to what runs there: {exc}"
            ) from exc
        except ConsumerGenerationConflict as exc:
            raise InstanceChanged(
                f"instance {instance.uuid} changed in Placement while it was resized: {exc}"
            ) from exc
        # Any other Placement error is no verdict on the host: it reaches the client as what
        # it is (503 unreachable, 409 conflict), never as "No valid host".
        try:
            handed = self._hand_over(instance, flavor, migration_uuid, limits)
        except ResizeOverQuota:
            self._move_back(instance, migration_uuid, provider, old_resources)
            raise
        if not handed:
            self._move_back(instance, migration_uuid, provider, old_resources)
            raise InstanceChanged(f"instance {instance.uuid} changed state while it was resized")
        return migration_uuid

    def _check_filters(self, instance: Instance, flavor: Flavor, provider: str) -> None:
        with self.database.reader() as session:
            image = db_api.get_image(session, instance.image_id)
            properties = dict(image.properties or {}) if image is not None else {}
        refusal = self.scheduler.refusal_in_place(
            resized_spec(instance, flavor, properties), provider
        )
        if refusal is not None:
            raise ResizeRefused(
                f"No valid host was found. Host {instance.host} {refusal}: flavor "
                f"{flavor.name} cannot run there (filemem resizes on the server's own host)"
            )

    def _hand_over(
        self,
        instance: Instance,
        flavor: Flavor,
        migration_uuid: str,
        limits: quota_rules.Limits | None,
    ) -> bool:
        with self.database.session() as session:
            if limits is not None:
                _check_quota(session, instance, flavor, limits)
            updated = db_api.update_instance(
                session,
                instance.uuid,
                {
                    **flavor_columns(flavor),
                    "old_flavor": flavor_of(instance),
                    "task_state": states.RESIZE_MIGRATING,
                },
                expect_vm_states=RESIZABLE,
                expect_task_states=[None],
                expect_not_deleting=True,
            )
            if updated is None:
                return False
            migrations_db.create_migration(
                session,
                {
                    "uuid": migration_uuid,
                    "instance_uuid": instance.uuid,
                    "migration_type": migrations_db.RESIZE,
                    "status": migrations_db.MIGRATING,
                    "source_compute": instance.host,
                    "dest_compute": instance.host,
                    "old_flavor_id": instance.flavor_id,
                    "new_flavor_id": flavor.flavorid,
                    "project_id": instance.project_id,
                    "user_id": instance.user_id,
                },
            )
        return True

    def _move_back(
        self, instance: Instance, migration_uuid: str, provider: str, resources: dict[str, int]
    ) -> None:
        generation, _ = self.placement.get_allocations(instance.uuid)
        migration_generation, _ = self.placement.get_allocations(migration_uuid)
        self.placement.move_allocations(
            {instance.uuid: {provider: resources}, migration_uuid: {}},
            {instance.uuid: generation, migration_uuid: migration_generation},
            instance.project_id,
            instance.user_id,
            {migration_uuid: MIGRATION_CONSUMER_TYPE},
        )

    def confirm(self, instance: Instance) -> None:
        """Drop the old flavor's allocation; the instance keeps the new flavor and power."""
        with self.database.session() as session:
            migration = migrations_db.in_progress(session, instance.uuid)
            running = instance.power_state == 1
            updated = db_api.update_instance(
                session,
                instance.uuid,
                {"vm_state": states.ACTIVE if running else states.STOPPED, "old_flavor": None},
                expect_vm_states=[states.RESIZED],
                expect_task_states=[None],
                notify=True,
            )
            if updated is None:
                raise InstanceChanged(f"instance {instance.uuid} is not waiting for a confirm")
            if migration is not None:
                # In the transaction: if Placement fails, the instance stays in VERIFY_RESIZE.
                self.placement.delete_allocations(migration.uuid)
                migrations_db.set_status(session, migration, migrations_db.CONFIRMED)

    def revert(self, instance: Instance) -> None:
        """Put the old flavor back for the agent; allocations move back once it is done
        (finish_revert), so the host never under-counts the bigger flavor meanwhile."""
        old = instance.old_flavor
        if not old:
            raise ResizeRefused(f"instance {instance.uuid} has no flavor to revert to")
        with self.database.session() as session:
            migration = migrations_db.in_progress(session, instance.uuid)
            updated = db_api.update_instance(
                session,
                instance.uuid,
                {**old, "task_state": states.RESIZE_REVERTING},
                expect_vm_states=[states.RESIZED],
                expect_task_states=[None],
                expect_not_deleting=True,
            )
            if updated is None:
                raise InstanceChanged(f"instance {instance.uuid} is not waiting for a confirm")
            if migration is not None:
                migrations_db.set_status(session, migration, migrations_db.REVERTING)

    def finish_revert(self, instance_uuid: str) -> None:
        """The agent runs the old flavor again: the migration's allocation returns to it."""
        with self.database.session() as session:
            migration = migrations_db.in_progress(session, instance_uuid)
            instance = db_api.get_instance(session, instance_uuid)
            if migration is None or instance is None:
                return
            generation, _ = self.placement.get_allocations(instance_uuid)
            migration_generation, held = self.placement.get_allocations(migration.uuid)
            if held:
                self.placement.move_allocations(
                    {instance_uuid: held, migration.uuid: {}},
                    {instance_uuid: generation, migration.uuid: migration_generation},
                    instance.project_id,
                    instance.user_id,
                    {migration.uuid: MIGRATION_CONSUMER_TYPE},
                )
            migrations_db.set_status(session, migration, migrations_db.REVERTED)
            instance.old_flavor = None

    def finish_resize(self, instance_uuid: str) -> None:
        """The agent runs the new flavor: the migration waits for confirm or revert."""
        with self.database.session() as session:
            migration = migrations_db.in_progress(session, instance_uuid)
            if migration is not None and migration.status == migrations_db.MIGRATING:
                migrations_db.set_status(session, migration, migrations_db.FINISHED)

    def fail(self, instance_uuid: str) -> None:
        """The agent could not resize: the record says error; allocations stay as they are
        until the instance is deleted (both consumers go with it) or reset."""
        with self.database.session() as session:
            migration = migrations_db.in_progress(session, instance_uuid)
            if migration is not None:
                migrations_db.set_status(session, migration, migrations_db.ERROR)

    def on_report(self, instance_uuid: str, task_before: str | None, now: Instance) -> None:
        """An agent report may end a resize step: move the record (and allocations) on."""
        if task_before not in (states.RESIZE_MIGRATING, states.RESIZE_REVERTING):
            return
        if now.vm_state == states.ERROR:
            self.fail(instance_uuid)
        elif now.task_state is not None:
            return
        elif task_before == states.RESIZE_MIGRATING and now.vm_state == states.RESIZED:
            self.finish_resize(instance_uuid)
        elif task_before == states.RESIZE_REVERTING:
            self.finish_revert(instance_uuid)

    def forget(self, session: Session, instance_uuid: str) -> None:
        """The instance is going (in the caller's transaction): so are the allocations its
        migrations held."""
        for row in migrations_db.list_migrations(
            session, instance_uuid=instance_uuid, statuses=migrations_db.IN_PROGRESS
        ):
            self.placement.delete_allocations(row.uuid)
            migrations_db.set_status(session, row, migrations_db.ERROR)
