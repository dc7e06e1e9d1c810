"""Builds an API process left half-done (it died during POST /servers): nova's build cleanup.

A create commits its rows (BUILD, scheduling, no host) before it schedules, claims in
Placement and hands each row to a host. A process killed in between leaves a row that no
process will finish, and perhaps a claim. Every API process sweeps periodically: a row still
in scheduling `build_timeout` seconds after it was created is set to ERROR with a fault, and
its claim released; a claim whose consumer was a server (it has an action) but has no row any
more is released too. The age bound, not a per-process marker, is what keeps a restarting
process off a sibling's in-flight create on a shared database: a live sibling schedules a
row within seconds, and each step is a compare-and-swap on task_state, so a sibling that is
merely slow fails its hand-over (and releases its claim) instead of racing the sweep.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from filemem.common import states
from filemem.db import api as db_api
from filemem.db.models import Instance, InstanceAction, Migration, Service, utcnow
from filemem.db.session import Database
from filemem.placement.claims import release
from filemem.placement.client import PlacementClient

LOG = logging.getLogger(__name__)

INTERRUPTED = (
    "Build interrupted: the API process scheduling this server stopped before it finished "
    "(still scheduling {seconds} s after it was created); its claim, if any, was released. "
    "Delete the server and create it again."
)


@dataclass
class SweepResult:
    """What one sweep did: instances set to ERROR, consumers whose allocations went."""

    failed: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)


def stale_builds(database: Database, cutoff: dt.datetime) -> list[str]:
    """Instances created before `cutoff` and still scheduling, with no host."""
    with database.reader() as session:
        query = select(Instance.uuid).where(
            Instance.task_state == states.SCHEDULING,
            Instance.host.is_(None),
            Instance.created_at < cutoff,
        )
        return list(session.scalars(query.order_by(Instance.created_at)))


def fail_interrupted(
    database: Database, placement: PlacementClient, uuid: str, timeout: float
) -> bool:
    """ERROR with a fault and no claim, if it is still scheduling; True when it was.

    One transaction: the compare-and-swap first (it locks the row: a sibling's hand-over of
    the same row waits, then finds it no longer scheduling), then Placement, then commit. If
    Placement fails or the process dies before the commit, the row stays scheduling and the
    next sweep does it again; so no ERROR row is ever left holding a claim.
    """
    message = INTERRUPTED.format(seconds=int(timeout))
    with database.session() as session:
        failed = db_api.fail_scheduling(session, uuid, message)
        if failed is None:
            return False
        placement.delete_allocations(uuid)
    LOG.warning("instance %s: %s", uuid, message)
    return True


def orphan_consumers(database: Database, placement: PlacementClient) -> list[str]:
    """Consumers on the registered hosts' providers that were servers (an action names
    them) but have no row, nor a migration of that uuid. Allocations are read before the
    rows: a row always exists before its claim, so a claim made meanwhile has its row."""
    with database.reader() as session:
        providers = [p for p in session.scalars(select(Service.provider_uuid)) if p]
    consumers: set[str] = set()
    for provider in providers:
        consumers.update(placement.get_provider_allocations(provider))
    if not consumers:
        return []
    wanted = sorted(consumers)
    with database.reader() as session:
        rows = set(session.scalars(select(Instance.uuid).where(Instance.uuid.in_(wanted))))
        moves = set(session.scalars(select(Migration.uuid).where(Migration.uuid.in_(wanted))))
        servers = set(
            session.scalars(
                select(InstanceAction.instance_uuid).where(InstanceAction.instance_uuid.in_(wanted))
            )
        )
    return sorted(servers - rows - moves)


def sweep(
    database: Database,
    placement: PlacementClient,
    timeout: float,
    now: dt.datetime | None = None,
) -> SweepResult:
    """One pass: interrupted builds to ERROR, then orphaned claims released."""
    result = SweepResult()
    cutoff = (now or utcnow()) - dt.timedelta(seconds=timeout)
    for uuid in stale_builds(database, cutoff):
        if fail_interrupted(database, placement, uuid, timeout):
            result.failed.append(uuid)
    for consumer in orphan_consumers(database, placement):
        LOG.warning("releasing the allocation of %s: no server of that uuid any more", consumer)
        release(placement, consumer)
        result.released.append(consumer)
    return result
