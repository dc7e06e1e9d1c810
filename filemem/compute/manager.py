"""Compute manager: spawn and destroy guests; heal repairs the drift of their allocations."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from filemem.common.guests import Flavor, GuestInfo, Image, Nic, validate_uuid
from filemem.common.private_files import private_file
from filemem.common.resources import guest_resources
from filemem.exceptions import GuestAlreadyExists, GuestNotFound
from filemem.placement.client import PlacementApiError, PlacementClient
from filemem.virt.driver import HypervisorDriver

LOG = logging.getLogger(__name__)

# The low-level CLI has no tenants; Placement wants a project and a user on every consumer.
DEFAULT_PROJECT_ID = "filemem"
DEFAULT_USER_ID = "filemem"
LOCK_FILE = "allocations.lock"


@dataclass
class HealResult:
    """What heal() found and changed: consumers whose allocations it removed, created or
    repaired, and those seen to differ once (repaired when the next heal sees it again)."""

    removed: list[str] = field(default_factory=list)
    claimed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # guest uuid -> why no allocation
    kept: int = 0
    drifted: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)

    @property
    def converged(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class Placed:
    """What the API allocated to one of its instances on this host (its flavor's resources)."""

    resources: dict[str, int]
    project_id: str = DEFAULT_PROJECT_ID
    user_id: str = DEFAULT_USER_ID


def _shown(resources: Mapping[str, int]) -> dict[str, int]:
    """Resources in a stable order for the log (Placement answers them in any order)."""
    return dict(sorted(resources.items()))


def flavor_resources(flavor: Flavor) -> dict[str, int]:
    return guest_resources(flavor.memory_mb, flavor.vcpus, flavor.disk_gb)


class ComputeManager:
    """Starts and destroys this host's guests; heal keeps Placement honest about them.

    The API owns the allocations of the instances it schedules (claim, move, resize, delete):
    spawn and destroy write none. Heal is the safety net for drift (an allocation removed or
    changed behind filemem's back, a guest nobody placed): it logs what it repaired and why.
    Spawn and heal hold one file lock under state_path, so heal never claims for a guest that
    another filemem process on this host is starting.
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
        # consumer -> (allocation seen, allocation placed) at the last heal: a difference is
        # repaired only when the next heal sees the same one, as the agent's view of what the
        # API placed may lag a move the API just made.
        self._drift: dict[str, tuple[dict[str, int], dict[str, int]]] = {}

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

    def spawn(
        self,
        name: str,
        uuid: str,
        flavor: Flavor,
        image: Image,
        *,
        owner: str = "api",
        nics: Sequence[Nic] = (),
    ) -> GuestInfo:
        """Start the guest; its allocation is the API's (claimed when it was scheduled)."""
        uuid = validate_uuid(uuid)
        with self._locked():
            if self._exists(uuid):
                raise GuestAlreadyExists(f"a guest with uuid {uuid} is already defined here")
            guest = self.driver.spawn(name, uuid, flavor, image, owner, nics=nics)
        LOG.info("guest %s (%s) started with %s", name, uuid, flavor_resources(flavor))
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
        nics: Sequence[Nic] = (),
    ) -> GuestInfo:
        """The guest again from `image`: the driver's rebuild keeps the uuid and the name (the
        API's allocation stays, the flavor does not change); an instance whose guest is gone
        (one in ERROR after a failed spawn) is spawned, and stopped when it should not run."""
        uuid = validate_uuid(uuid)
        if self._exists(uuid):
            return self.driver.rebuild(uuid, flavor, image, start, nics=nics)
        guest = self.spawn(name, uuid, flavor, image, owner=owner, nics=nics)
        if not start:
            self.driver.power_off(uuid, timeout=0)
            guest = self.driver.get_guest(uuid)
        return guest

    def destroy(self, uuid: str) -> bool:
        """Destroy the guest; False when it did not exist. Its allocation is the API's to drop
        (when the agent confirms the instance gone); an orphan's is dropped by heal."""
        return self.driver.destroy(validate_uuid(uuid))

    def _exists(self, uuid: str) -> bool:
        try:
            self.driver.get_guest(uuid)
        except GuestNotFound:
            return False
        return True

    def heal(
        self,
        keep: Iterable[str] = (),
        moving: Iterable[str] = (),
        placed: Mapping[str, Placed] | None = None,
    ) -> HealResult:
        """Make the allocations on our provider match the guests that exist on this host.

        Allocations of consumers that are no guest here are removed, except those in `keep`:
        instances the scheduler has claimed for this host that are not spawned yet (the agent
        passes the API's desired set). `placed` is what the API allocated to its settled
        instances (no move or task under way): a guest without an allocation gets that (else
        libvirt's view of it: memory, vcpus), or is reported in `failed` when it does not fit;
        an allocation that differs from it is reported, and repaired when the next heal finds
        the same difference. Guests in `moving` (being live-migrated) are left alone: the
        migration consumer holds their memory here and the instance's own allocation is on
        the destination, which a claim here would replace.
        """
        result = HealResult()
        placed = placed or {}
        with self._locked():
            guests = {g.uuid: g for g in self.driver.list_guests() if self.owns(g)}
            allocations = self.client.get_provider_allocations(self.provider_uuid)
            for consumer in sorted(set(allocations) - set(guests) - set(keep)):
                if self.client.delete_allocations(consumer):
                    LOG.warning(
                        "removed allocation %s of consumer %s: no such guest on this host and "
                        "the API places no instance of that uuid here",
                        allocations[consumer],
                        consumer,
                    )
                result.removed.append(consumer)
            moving = set(moving)
            drift = self._drift
            self._drift = {}
            for uuid, guest in sorted(guests.items()):
                if uuid in moving:
                    result.kept += 1
                elif uuid not in allocations:
                    self._heal_guest(guest, placed.get(uuid), result)
                elif uuid in placed and allocations[uuid] != placed[uuid].resources:
                    self._heal_drift(guest, allocations[uuid], placed[uuid], drift, result)
                else:
                    result.kept += 1
        return result

    def _heal_guest(self, guest: GuestInfo, placed: Placed | None, result: HealResult) -> None:
        if placed is None:
            placed = Placed(guest_resources(guest.memory_mb, guest.vcpus))
        try:
            self.client.claim(
                guest.uuid,
                self.provider_uuid,
                placed.resources,
                placed.project_id or self.project_id,
                placed.user_id or self.user_id,
            )
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
            "guest %s (%s) had no allocation in Placement (removed outside filemem, or never "
            "made); claimed %s",
            guest.name,
            guest.uuid,
            _shown(placed.resources),
        )

    def _heal_drift(
        self,
        guest: GuestInfo,
        seen: dict[str, int],
        placed: Placed,
        drift: Mapping[str, tuple[dict[str, int], dict[str, int]]],
        result: HealResult,
    ) -> None:
        if drift.get(guest.uuid) != (seen, placed.resources):
            self._drift[guest.uuid] = (seen, dict(placed.resources))
            result.drifted.append(guest.uuid)
            LOG.warning(
                "guest %s (%s): allocation %s in Placement differs from %s the API placed; "
                "repaired at the next heal if it stays",
                guest.name,
                guest.uuid,
                _shown(seen),
                _shown(placed.resources),
            )
            return
        try:
            self.client.claim(
                guest.uuid,
                self.provider_uuid,
                placed.resources,
                placed.project_id,
                placed.user_id,
            )
        except PlacementApiError as exc:
            result.failed[guest.uuid] = str(exc)
            LOG.warning(
                "guest %s (%s): could not repair its allocation: %s", guest.name, guest.uuid, exc
            )
            return
        result.repaired.append(guest.uuid)
        LOG.warning(
            "guest %s (%s): repaired allocation %s to %s the API placed (changed outside "
            "filemem: it stayed so across two heals)",
            guest.name,
            guest.uuid,
            _shown(seen),
            _shown(placed.resources),
        )
