"""Host aggregates: create, rename, delete, hosts and metadata (nova's AggregateAPI rows)."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Collection, Mapping

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from filemem.common.aggregates import AZ_KEY, AggregateFacts, host_zone
from filemem.db.api import DuplicateEntry
from filemem.db.models import Aggregate, AggregateHost, AggregateMetadata, utcnow


def facts(aggregate: Aggregate) -> AggregateFacts:
    """What the pure rules (filemem.common.aggregates) need of a row."""
    return AggregateFacts(aggregate.id, aggregate.name, aggregate.metadata_dict)


def _exists(name: str) -> DuplicateEntry:
    return DuplicateEntry(f"Aggregate {name} already exists.")


def get(session: Session, aggregate_id: int) -> Aggregate | None:
    return session.get(Aggregate, aggregate_id)


def get_by_name(session: Session, name: str) -> Aggregate | None:
    return session.scalars(select(Aggregate).where(Aggregate.name == name)).first()


def list_all(session: Session) -> list[Aggregate]:
    """Every aggregate, oldest first (nova's order)."""
    return list(session.scalars(select(Aggregate).order_by(Aggregate.id)))


def create(session: Session, name: str, zone: str | None) -> Aggregate:
    """A new aggregate, in `zone` when given; DuplicateEntry when the name is taken."""
    if get_by_name(session, name) is not None:
        raise _exists(name)
    row = Aggregate(uuid=str(uuidlib.uuid4()), name=name, created_at=utcnow())
    if zone:
        row.metadata_.append(AggregateMetadata(key=AZ_KEY, value=zone))
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        # Another request created the same name between our read and write.
        raise _exists(name) from exc
    return row


def rename(session: Session, aggregate: Aggregate, name: str) -> None:
    """A new name; DuplicateEntry when another aggregate has it."""
    other = get_by_name(session, name)
    if other is not None and other.id != aggregate.id:
        raise _exists(name)
    aggregate.name = name
    aggregate.updated_at = utcnow()
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:
        raise _exists(name) from exc


def delete(session: Session, aggregate: Aggregate) -> None:
    session.delete(aggregate)
    session.flush()


def add_host(session: Session, aggregate: Aggregate, host: str) -> bool:
    """Add `host`; False when it was a member already."""
    if host in aggregate.hosts:
        return False
    try:
        with session.begin_nested():
            aggregate.hosts_.append(AggregateHost(host=host))
            session.flush()
    except IntegrityError:
        session.refresh(aggregate)
        return False
    aggregate.updated_at = utcnow()
    return True


def remove_host(session: Session, aggregate: Aggregate, host: str) -> bool:
    """Remove `host`; False when it was not a member."""
    for row in aggregate.hosts_:
        if row.host == host:
            aggregate.hosts_.remove(row)
            aggregate.updated_at = utcnow()
            session.flush()
            return True
    return False


def update_metadata(
    session: Session, aggregate: Aggregate, changes: Mapping[str, str | None]
) -> None:
    """nova's update_metadata: set each key, delete those whose value is None."""
    rows = {row.key: row for row in aggregate.metadata_}
    for key, value in changes.items():
        row = rows.get(key)
        if value is None:
            if row is not None:
                aggregate.metadata_.remove(row)
        elif row is None:
            aggregate.metadata_.append(AggregateMetadata(key=key, value=value))
        else:
            row.value = value
    aggregate.updated_at = utcnow()
    session.flush()


def for_hosts(session: Session, hosts: Collection[str]) -> dict[str, list[Aggregate]]:
    """Each host's aggregates, oldest first (hosts in none are left out)."""
    query = (
        select(AggregateHost.host, Aggregate)
        .join(Aggregate, AggregateHost.aggregate_id == Aggregate.id)
        .where(AggregateHost.host.in_(hosts))
        .order_by(Aggregate.id)
    )
    found: dict[str, list[Aggregate]] = {}
    for host, aggregate in session.execute(query):
        found.setdefault(host, []).append(aggregate)
    return found


def for_host(session: Session, host: str) -> list[Aggregate]:
    return for_hosts(session, [host]).get(host, [])


def host_zones(session: Session) -> dict[str, str]:
    """host -> the availability zone its aggregates put it in (hosts in no zone left out);
    the choice among several is the pure rule's (common.aggregates.host_zone)."""
    query = (
        select(AggregateHost.host, Aggregate.id, Aggregate.name, AggregateMetadata.value)
        .join(Aggregate, AggregateHost.aggregate_id == Aggregate.id)
        .join(AggregateMetadata, AggregateHost.aggregate_id == AggregateMetadata.aggregate_id)
        .where(AggregateMetadata.key == AZ_KEY)
    )
    zoned: dict[str, list[AggregateFacts]] = {}
    for host, aggregate_id, name, zone in session.execute(query):
        # Only the zone key is read: the rule looks at nothing else.
        zoned.setdefault(host, []).append(AggregateFacts(aggregate_id, name, {AZ_KEY: zone}))
    return {host: host_zone(aggregates) for host, aggregates in zoned.items()}


def zone_aggregates(session: Session) -> dict[str, list[str]]:
    """zone name -> the uuids of the aggregates that carry it (what Placement's member_of
    asks for: nova's map_az_to_placement_aggregate)."""
    query = (
        select(AggregateMetadata.value, Aggregate.uuid)
        .join(Aggregate, AggregateMetadata.aggregate_id == Aggregate.id)
        .where(AggregateMetadata.key == AZ_KEY)
        .order_by(Aggregate.id)
    )
    zones: dict[str, list[str]] = {}
    for zone, uuid in session.execute(query):
        zones.setdefault(zone, []).append(uuid)
    return zones
