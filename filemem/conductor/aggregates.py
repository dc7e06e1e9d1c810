"""Mirror aggregate memberships into Placement (nova's aggregate_add_host/remove_host and
`nova-manage placement sync_aggregates`); say which MEMORY_MB ratio an aggregate gives a host.

The ratio is only answered to the host's agent (registration): its inventory sync is the one
writer of MEMORY_MB in Placement, so no two writers undo each other's allocation_ratio.

Best effort, as nova: a Placement failure is logged and left to the next registration of
the host's agent (every heartbeat repairs), never undoing what the database holds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from filemem.common.aggregates import DEFAULT_ZONE, ram_ratio
from filemem.db import aggregates as db_aggregates
from filemem.db import api as db_api
from filemem.db.session import Database
from filemem.exceptions import PlacementError
from filemem.placement import aggregates as placement_aggregates
from filemem.placement.client import PlacementClient

# What member_of/in_tree ask for when a zone or host is unknown: a uuid no provider has.
NOWHERE = "00000000-0000-0000-0000-000000000000"

LOG = logging.getLogger(__name__)


@dataclass(frozen=True)
class HostMirror:
    """What a host should show in Placement (its provider's aggregates) and the memory ratio
    its agent is told to report."""

    host: str
    provider_uuid: str
    members_of: frozenset[str]
    not_members_of: frozenset[str]
    ram_allocation_ratio: float | None  # None: the agent's own [DEFAULT] ram_allocation_ratio


def wanted(database: Database, host: str) -> HostMirror | None:
    """The host's mirror from the database; None for a host without a provider."""
    with database.reader() as session:
        service = db_api.get_service_by_host(session, host)
        if service is None or not service.provider_uuid:
            return None
        mine = db_aggregates.for_host(session, host)
        known = {aggregate.uuid for aggregate in db_aggregates.list_all(session)}
        ratio = ram_ratio(service.file_backed, [db_aggregates.facts(a) for a in mine])
        members = frozenset(aggregate.uuid for aggregate in mine)
        return HostMirror(host, service.provider_uuid, members, frozenset(known - members), ratio)


def mirror(placement: PlacementClient, want: HostMirror, forget: Iterable[str] = ()) -> bool:
    """Make Placement show `want` (and drop the aggregates in `forget`, e.g. one just
    deleted); True when done, False when Placement failed (logged)."""
    try:
        placement_aggregates.update_provider_aggregates(
            placement,
            want.provider_uuid,
            add=want.members_of,
            remove=want.not_members_of | set(forget),
        )
    except PlacementError as exc:
        if exc.status == 404:
            # A new host's agent registers before its first sync creates the provider.
            LOG.info("host %s: provider %s not in Placement yet", want.host, want.provider_uuid)
            return False
        LOG.warning(
            "host %s: Placement does not show its aggregates yet (%s); its agent's next "
            "registration repairs it",
            want.host,
            exc,
        )
        return False
    return True


def sync_hosts(database: Database, placement: PlacementClient, hosts: Iterable[str]) -> None:
    """Mirror each host (those without a provider are skipped)."""
    for host in hosts:
        want = wanted(database, host)
        if want is not None:
            mirror(placement, want)


def placement_destination(
    database: Database, zone: str | None, host: str | None
) -> tuple[tuple[str, ...], str | None]:
    """(member_of, in_tree) for a server asking for `zone` and maybe a forced `host` (nova's
    map_az_to_placement_aggregate): a zone is its aggregates; the default zone "nova" is
    every host in no zone's aggregate (member_of=!in:..., Placement 1.32)."""
    with database.reader() as session:
        zones = db_aggregates.zone_aggregates(session)
        service = db_api.get_service_by_host(session, host) if host else None
    member_of: tuple[str, ...] = ()
    if zone == DEFAULT_ZONE and DEFAULT_ZONE not in zones:
        every = sorted(uuid for uuids in zones.values() for uuid in uuids)
        member_of = ("!in:" + ",".join(every),) if every else ()
    elif zone is not None:
        member_of = ("in:" + ",".join(zones.get(zone) or [NOWHERE]),)
    in_tree = None
    if host is not None:
        in_tree = service.provider_uuid if service and service.provider_uuid else NOWHERE
    return member_of, in_tree
