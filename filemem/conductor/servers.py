"""The server workflow: build (schedule, claim, hand over to a host) and delete, with their undo."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Protocol

from filemem.common import states
from filemem.conductor.aggregates import placement_destination
from filemem.conductor.claims import held_claim
from filemem.db import api as db_api
from filemem.db.models import Instance
from filemem.db.session import Database
from filemem.exceptions import PlacementError
from filemem.placement.client import PlacementClient
from filemem.scheduler import NoValidHost, RequestSpec, Selection

LOG = logging.getLogger(__name__)

NO_VALID_HOST = "No valid host was found."


class SchedulerProtocol(Protocol):
    """What the workflow needs of filemem.scheduler.manager.Scheduler (tests may stand in)."""

    def select_and_claim(self, spec: RequestSpec) -> Selection: ...

    def select_and_claim_many(self, specs: Sequence[RequestSpec]) -> list[Selection]: ...

    def invalidate_hosts(self) -> None: ...

    def refusal_in_place(self, spec: RequestSpec, provider_uuid: str) -> str | None: ...


@dataclass
class ServerConductor:
    """What handlers call once a request is valid; it owns the order of the steps."""

    database: Database
    placement: PlacementClient
    scheduler: SchedulerProtocol

    def build(self, instance: Instance) -> None:
        """Schedule and claim, then hand the instance to its host; failures leave it in ERROR,
        but a Placement failure (down, a conflict) removes it and is raised: the request
        fails as a whole and the client retries.

        Nothing is left claimed if the instance was deleted while we claimed, or if the
        hand-over itself fails.
        """
        try:
            selection = self.scheduler.select_and_claim(
                self._spec(instance, self._image_properties(instance.image_id))
            )
        except NoValidHost as exc:
            self._fail(instance.uuid, f"{NO_VALID_HOST} {exc.reason}")
            return
        except PlacementError:
            self._withdraw([instance])
            raise
        except Exception as exc:
            # nova too puts the instance in ERROR when scheduling breaks; the reason is its fault.
            LOG.exception("scheduling %s failed", instance.uuid)
            self._fail(instance.uuid, f"Scheduling failed: {exc}")
            return
        with held_claim(self.placement, instance.uuid) as claim:
            if self._hand_over(instance.uuid, selection):
                claim.commit()
            else:
                LOG.info("instance %s was deleted while it was scheduled", instance.uuid)

    def build_many(self, instances: Sequence[Instance]) -> None:
        """Multi-create: every instance is placed, or none is (nova's
        _ensure_sufficient_hosts). The scheduler claims them together (one Placement request)
        and leaves nothing claimed when they do not all fit; then all go to ERROR."""
        if len(instances) == 1:
            self.build(instances[0])
            return
        # One request boots one image: its properties are read once for all.
        properties = self._image_properties(instances[0].image_id)
        specs = [self._spec(instance, properties) for instance in instances]
        try:
            selections = self.scheduler.select_and_claim_many(specs)
        except NoValidHost:
            failure = f"{NO_VALID_HOST} There are not enough hosts available."
        except PlacementError:
            self._withdraw(instances)
            raise
        except Exception as exc:
            LOG.exception("scheduling %d instances failed", len(instances))
            failure = f"Scheduling failed: {exc}"
        else:
            with ExitStack() as stack:
                claims = [
                    stack.enter_context(held_claim(self.placement, instance.uuid))
                    for instance in instances
                ]
                for instance, selection, claim in zip(instances, selections, claims, strict=True):
                    if self._hand_over(instance.uuid, selection):
                        claim.commit()
                    else:
                        LOG.info("instance %s was deleted while it was scheduled", instance.uuid)
            return
        for instance in instances:
            self._fail(instance.uuid, failure)

    def delete(self, instance: Instance) -> None:
        """An unscheduled instance goes now; a scheduled one is handed to its agent to destroy."""
        with self.database.session() as session:
            if instance.host is None and db_api.delete_instance(
                session, instance.uuid, only_unscheduled=True
            ):
                # Inside the transaction: if Placement fails the row stays, the client retries.
                self.placement.delete_allocations(instance.uuid)
                return
            db_api.update_instance(
                session, instance.uuid, {"deleted_requested": True, "task_state": states.DELETING}
            )

    def _spec(self, instance: Instance, image_properties: Mapping[str, str]) -> RequestSpec:
        """request_spec with the zone's aggregates and the forced host's provider."""
        member_of, in_tree = placement_destination(
            self.database, instance.availability_zone, instance.requested_host
        )
        return request_spec(instance, image_properties, member_of, in_tree)

    def _image_properties(self, image_id: str) -> dict[str, str]:
        """The image's glance properties; none when it was deleted meanwhile (the agent's
        view then has no image either, and the spawn fails there)."""
        with self.database.reader() as session:
            image = db_api.get_image(session, image_id)
            return {} if image is None else dict(image.properties or {})

    def _hand_over(self, uuid: str, selection: Selection) -> bool:
        with self.database.session() as session:
            handed = db_api.update_instance(
                session,
                uuid,
                {"host": selection.host, "task_state": states.SPAWNING},
                expect_task_states=[states.SCHEDULING],
                expect_not_deleting=True,
            )
        return handed is not None

    def _withdraw(self, instances: Sequence[Instance]) -> None:
        """Placement failed before anything was claimed (down, or a conflict): the request
        fails as a whole (503/409), so its servers go rather than stay in ERROR for a fault
        that says nothing about them. Only rows still unscheduled: nothing else owns them."""
        with self.database.session() as session:
            for instance in instances:
                db_api.delete_instance(session, instance.uuid, only_unscheduled=True)

    def _fail(self, uuid: str, message: str) -> None:
        with self.database.session() as session:
            db_api.fail_scheduling(session, uuid, message)


def request_spec(
    instance: Instance,
    image_properties: Mapping[str, str] | None = None,
    member_of: tuple[str, ...] = (),
    in_tree: str | None = None,
) -> RequestSpec:
    """What the scheduler needs of an instance: its owner (the consumer), flavor sizes and
    specs, its image's properties, and where it may go (Placement member_of and in_tree)."""
    return RequestSpec(
        instance_uuid=instance.uuid,
        project_id=instance.project_id,
        user_id=instance.user_id,
        memory_mb=instance.memory_mb,
        vcpus=instance.vcpus,
        disk_gb=instance.root_gb,
        extra_specs=dict(instance.extra_specs or {}),
        image_properties=dict(image_properties or {}),
        member_of=member_of,
        in_tree=in_tree,
    )
