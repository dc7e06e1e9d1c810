"""Compute manager: Placement allocations follow the guests (claim, spawn, destroy, heal)."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filemem.common.guests import Flavor, GuestInfo, Image, validate_uuid
from filemem.common.private_files import private_file
from filemem.common.resources import guest_resources
from filemem.exceptions import FilememError, GuestAlreadyExists, GuestNotFound
from filemem.placement.client import PlacementApiError, PlacementClient
from filemem.virt.driver import HypervisorDriver

LOG = logging.getLogger(__name__)

# The low-level CLI has no tenants; Placement wants a project and a user on every consumer.
DEFAULT_PROJECT_ID = "filemem"
DEFAULT_USER_ID = "filemem"
LOCK_FILE = "allocations.lock"


@dataclass
class HealResult:
    """What heal() changed: consumers whose allocations it removed or created."""

    removed: list[str] = field(default_factory=list)
    claimed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # guest uuid -> why no allocation
    kept: int = 0

    @property
    def converged(self) -> bool:
        return not self.failed


def flavor_resources(flavor: Flavor) -> dict[str, int]:
    return guest_resources(flavor.memory_mb, flavor.vcpus, flavor.disk_gb)


class ComputeManager:
    """Claims before a guest starts and releases after it is gone, on one resource provider.

    Claim/spawn and heal hold one file lock under state_path, so heal in the agent never
    takes a claim for a guest that another filemem process on this host is starting.
    """

    def __init__(
        self,
        driver: HypervisorDriver,
        client: PlacementClient,
        provider_uuid: str,
        state_path: Path,
        *,
        project_id: str = DEFAULT_PROJECT_ID,
        user_id: str = DEFAULT_USER_ID,
    ) -> None:
        self.driver = driver
        self.client = client
        self.provider_uuid = provider_uuid
        self.state_path = Path(state_path)
        self.project_id = project_id
        self.user_id = user_id

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_path.mkdir(parents=True, exist_ok=True)
        # Only filemem's own processes take this lock: no other user needs to open it.
        private_file(self.state_path / LOCK_FILE)
        with open(self.state_path / LOCK_FILE, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def owns(self, guest: GuestInfo) -> bool:
        """A guest of this filemem host: its instance directory is under our state_path.

        libvirt may run domains filemem did not create (or another state_path's); those
        are not our consumers and get no allocation on our provider.
        """
        return self.driver.instance_dir(guest.uuid).is_dir()

    def claim(self, uuid: str, resources: dict[str, int]) -> bool:
        """Idempotent: False (no write) when the consumer already holds exactly that here."""
        return self.client.claim(uuid, self.provider_uuid, resources, self.project_id, self.user_id)

    def spawn(
        self,
        name: str,
        uuid: str,
        flavor: Flavor,
        image: Image,
        *,
        owner: str = "api",
        project_id: str | None = None,
        user_id: str | None = None,
    ) -> GuestInfo:
        """Claim the flavor's resources (or confirm a scheduler's identical claim, no write),
        then start the guest; any failure drops the claim."""
        uuid = validate_uuid(uuid)
        with self._locked():
            if self._exists(uuid):
                # Checked before claiming: the allocation of a running guest is not ours to drop.
                raise GuestAlreadyExists(f"a guest with uuid {uuid} is already defined here")
            self.client.claim(
                uuid,
                self.provider_uuid,
                flavor_resources(flavor),
                project_id or self.project_id,
                user_id or self.user_id,
            )
            try:
                guest = self.driver.spawn(name, uuid, flavor, image, owner)
            except BaseException:
                self._release_after_failed_spawn(uuid)
                raise
        LOG.info(
            "guest %s (%s) holds %s on provider %s",
            name,
            uuid,
            flavor_resources(flavor),
            self.provider_uuid,
        )
        return guest

    def rebuild(
        self,
        name: str,
        uuid: str,
        flavor: Flavor,
        image: Image,
        *,
        start: bool,
        owner: str = "api",
        project_id: str | None = None,
        user_id: str | None = None,
    ) -> GuestInfo:
        """The guest again from `image`: the driver's rebuild keeps the uuid, the name and the
        allocation (the flavor does not change); an instance whose guest is gone (one in ERROR
        after a failed spawn) is spawned, claim included, and stopped when it should not run."""
        uuid = validate_uuid(uuid)
        if self._exists(uuid):
            return self.driver.rebuild(uuid, flavor, image, start)
        guest = self.spawn(
            name, uuid, flavor, image, owner=owner, project_id=project_id, user_id=user_id
        )
        if not start:
            self.driver.power_off(uuid, timeout=0)
            guest = self.driver.get_guest(uuid)
        return guest

    def _release_after_failed_spawn(self, uuid: str) -> None:
        try:
            if self._exists(uuid):
                return  # someone else's guest won the uuid meanwhile; the claim is its own
            self.client.delete_allocations(uuid)
        except FilememError as exc:
            # The spawn error matters more; heal removes the stray claim later.
            LOG.error("could not drop the allocation of failed guest %s: %s", uuid, exc)

    def destroy(self, uuid: str) -> bool:
        """Destroy the guest, then drop its allocation; False when neither existed."""
        uuid = validate_uuid(uuid)
        existed = self.driver.destroy(uuid)
        released = self.client.delete_allocations(uuid)
        return existed or released

    def _exists(self, uuid: str) -> bool:
        try:
            self.driver.get_guest(uuid)
        except GuestNotFound:
            return False
        return True

    def heal(self, keep: Iterable[str] = (), moving: Iterable[str] = ()) -> HealResult:
        """Make the allocations on our provider exactly the guests that exist on this host.

        Allocations of consumers that are no guest here are removed, except those in `keep`:
        instances the scheduler has claimed for this host that are not spawned yet (the agent
        passes the API's desired set). Guests without an allocation get one from libvirt's
        view of them (memory, vcpus; disk size is not known there), or are reported in
        `failed` when it does not fit. Guests of either owner (api, cli) count: both use the
        store. Guests in `moving` (being live-migrated) get no claim: the migration consumer
        holds their memory here and the instance's own allocation is on the destination, which
        a claim here would replace.
        """
        result = HealResult()
        with self._locked():
            guests = {g.uuid: g for g in self.driver.list_guests() if self.owns(g)}
            allocations = self.client.get_provider_allocations(self.provider_uuid)
            for consumer in sorted(set(allocations) - set(guests) - set(keep)):
                if self.client.delete_allocations(consumer):
                    LOG.warning(
                        "removed allocation %s of consumer %s: no such guest on this host",
                        allocations[consumer],
                        consumer,
                    )
                result.removed.append(consumer)
            moving = set(moving)
            for uuid, guest in sorted(guests.items()):
                if uuid in allocations or uuid in moving:
                    result.kept += 1
                    continue
                self._heal_guest(guest, result)
        return result

    def _heal_guest(self, guest: GuestInfo, result: HealResult) -> None:
        resources = guest_resources(guest.memory_mb, guest.vcpus)
        try:
            self.claim(guest.uuid, resources)
        except PlacementApiError as exc:
            # Unavailability is not caught: the whole heal fails and the agent retries it.
            result.failed[guest.uuid] = str(exc)
            LOG.warning(
                "guest %s (%s) runs without an allocation in Placement: %s",
                guest.name,
                guest.uuid,
                exc,
            )
            return
        result.claimed.append(guest.uuid)
        LOG.warning(
            "guest %s (%s) had no allocation; claimed %s", guest.name, guest.uuid, resources
        )
