"""Query functions of the ports table (the built-in network's interfaces and addresses)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from filemem.db.models import Instance, Port, utcnow
from filemem.exceptions import FilememError


class AddressTaken(FilememError):
    """Another port holds that address on that network (maybe just now, in another process)."""


@dataclass(frozen=True)
class PortFilter:
    """Which ports a listing returns; None: any."""

    instance_uuids: Collection[str] | None = None
    network_id: str | None = None
    project_id: str | None = None
    ip_address: str | None = None
    mac_address: str | None = None


def add(
    session: Session,
    *,
    port_id: str,
    network_id: str,
    instance_uuid: str,
    mac_address: str,
    ip_address: str | None,
    created_at: dt.datetime | None = None,
) -> Port:
    """Insert a port in a savepoint; AddressTaken when the address is not free (the rest of
    the transaction stands, so the caller can try another address)."""
    port = Port(
        id=port_id,
        network_id=network_id,
        instance_uuid=instance_uuid,
        mac_address=mac_address,
        ip_address=ip_address,
        created_at=created_at or utcnow(),
    )
    try:
        with session.begin_nested():
            session.add(port)
    except IntegrityError as exc:
        raise AddressTaken(f"{ip_address} is already in use on network {network_id}") from exc
    return port


def used_addresses(session: Session, network_id: str) -> set[str]:
    """Every address held on the network."""
    query = select(Port.ip_address).where(
        Port.network_id == network_id, Port.ip_address.is_not(None)
    )
    return {str(ip) for ip in session.scalars(query)}


def holder_of(session: Session, network_id: str, ip_address: str) -> str | None:
    """The instance whose port holds the address, or None."""
    query = select(Port.instance_uuid).where(
        Port.network_id == network_id, Port.ip_address == ip_address
    )
    return session.scalars(query).first()


def get(session: Session, port_id: str) -> Port | None:
    return session.get(Port, port_id)


@dataclass(frozen=True)
class Owner:
    """What a port shows of its instance: the project, and the host it runs on."""

    project_id: str
    host: str | None


def owners(session: Session, instance_uuids: Collection[str]) -> dict[str, Owner]:
    """instance uuid -> its project and host, in one read."""
    if not instance_uuids:
        return {}
    query = select(Instance.uuid, Instance.project_id, Instance.host).where(
        Instance.uuid.in_(list(instance_uuids))
    )
    return {uuid: Owner(project, host) for uuid, project, host in session.execute(query)}


def listing(session: Session, where: PortFilter) -> list[Port]:
    """Ports matching `where`, in the order their instances see them (oldest first)."""
    query = select(Port)
    if where.instance_uuids is not None:
        query = query.where(Port.instance_uuid.in_(list(where.instance_uuids)))
    if where.network_id is not None:
        query = query.where(Port.network_id == where.network_id)
    if where.ip_address is not None:
        query = query.where(Port.ip_address == where.ip_address)
    if where.mac_address is not None:
        query = query.where(Port.mac_address == where.mac_address)
    if where.project_id is not None:
        owned = select(Instance.uuid).where(Instance.project_id == where.project_id)
        query = query.where(Port.instance_uuid.in_(owned))
    return list(session.scalars(query.order_by(Port.created_at, Port.id)))


def of_instances(session: Session, uuids: Collection[str]) -> dict[str, list[Port]]:
    """instance uuid -> its ports (in the guest's order), in one read."""
    found: dict[str, list[Port]] = {uuid: [] for uuid in uuids}
    if not found:
        return found
    for port in listing(session, PortFilter(instance_uuids=list(found))):
        found[port.instance_uuid].append(port)
    return found


def delete_of_instance(session: Session, instance_uuid: str) -> int:
    """Release the instance's ports and their addresses; how many."""
    result = session.execute(
        delete(Port)
        .where(Port.instance_uuid == instance_uuid)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)
