"""The built-in network: one IPv4 network ([network] options), ports and addresses in SQL."""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from collections.abc import Collection, Sequence
from typing import Any

from oslo_config import cfg
from sqlalchemy.orm import Session

from filemem.common.addressing import InvalidSubnet, Subnet, is_ip_address, mac_address
from filemem.conductor.network import (
    FixedIpAlreadyInUse,
    FixedIpInvalid,
    NetworkDriver,
    NetworkInfo,
    NetworkRequest,
    NoMoreFixedIps,
    NoNetwork,
    PortFilter,
    PortInfo,
)
from filemem.db import ports as db_ports
from filemem.db.models import Port, utcnow
from filemem.exceptions import ConfigError

# How often an allocation tries the next free address after another process took the one it
# chose (each try re-reads what is used, so this bounds only a pathological stampede).
MAX_ATTEMPTS = 20


def subnet_id_of(network_id: str) -> str:
    """The subnet's id: derived from the network's, so every API process of a cloud agrees."""
    return str(uuidlib.uuid5(uuidlib.UUID(network_id), "subnet"))


class BuiltinNetwork(NetworkDriver):
    """One network shared by every guest; the database's unique (network_id, ip_address) is
    what makes an address belong to one port only, across API processes."""

    def __init__(self, network: NetworkInfo) -> None:
        self.network = network
        self.subnet = Subnet.parse(network.cidr, network.gateway)

    def list_networks(self) -> list[NetworkInfo]:
        return [self.network]

    def _requested(self, request: NetworkRequest) -> NetworkInfo:
        return self.network if request.network_id is None else self.show_network(request.network_id)

    def validate(self, session: Session, requested: Sequence[NetworkRequest], count: int) -> None:
        chosen: set[str] = set()
        for request in requested:
            network = self._requested(request)
            if request.fixed_ip is None:
                continue
            why = self.subnet.why_not_fixed(request.fixed_ip)
            if why is not None:
                raise FixedIpInvalid(request.fixed_ip, network.id, why)
            holder = db_ports.holder_of(session, network.id, request.fixed_ip)
            if holder is not None or request.fixed_ip in chosen:
                raise FixedIpAlreadyInUse(request.fixed_ip, holder)
            chosen.add(request.fixed_ip)

    def allocate_for_instance(
        self, session: Session, instance_uuid: str, requested: Sequence[NetworkRequest]
    ) -> list[PortInfo]:
        # The guest sees its interfaces in the order of created_at (eth0 first): one
        # microsecond apart, so ports made in one transaction keep the request's order.
        now = utcnow()
        return [
            self._allocate(session, instance_uuid, request, now + dt.timedelta(microseconds=n))
            for n, request in enumerate(requested)
        ]

    def _allocate(
        self,
        session: Session,
        instance_uuid: str,
        request: NetworkRequest,
        created_at: dt.datetime,
    ) -> PortInfo:
        network = self._requested(request)
        values: dict[str, Any] = {
            "network_id": network.id,
            "instance_uuid": instance_uuid,
            "mac_address": mac_address(),
            "created_at": created_at,
        }
        if request.fixed_ip is not None:
            try:
                port = db_ports.add(
                    session, port_id=str(uuidlib.uuid4()), ip_address=request.fixed_ip, **values
                )
            except db_ports.AddressTaken as exc:
                raise FixedIpAlreadyInUse(request.fixed_ip) from exc
            return self._info(port)
        for _ in range(MAX_ATTEMPTS):
            address = self.subnet.first_free(db_ports.used_addresses(session, network.id))
            if address is None:
                break
            try:
                port = db_ports.add(
                    session, port_id=str(uuidlib.uuid4()), ip_address=address, **values
                )
            except db_ports.AddressTaken:
                continue  # another API process took it between our read and insert
            return self._info(port)
        raise NoMoreFixedIps(network.id)

    def deallocate_for_instance(self, session: Session, instance_uuid: str) -> None:
        db_ports.delete_of_instance(session, instance_uuid)

    def ports_of(
        self, session: Session, instance_uuids: Collection[str]
    ) -> dict[str, list[PortInfo]]:
        found = db_ports.of_instances(session, instance_uuids)
        return {uuid: [self._info(port) for port in ports] for uuid, ports in found.items()}

    def list_ports(self, session: Session, where: PortFilter) -> list[PortInfo]:
        return [self._info(port) for port in db_ports.listing(session, where)]

    def show_port(self, session: Session, port_id: str) -> PortInfo | None:
        port = db_ports.get(session, port_id)
        return None if port is None else self._info(port)

    def _info(self, port: Port) -> PortInfo:
        # A port on a network no longer configured still shows (under the network's id), so
        # its instance keeps what it had until it is deleted.
        network = self.network
        if port.network_id != network.id:
            network = NetworkInfo(port.network_id, port.network_id, "", "", "")
        return PortInfo(
            id=port.id,
            network=network,
            instance_uuid=port.instance_uuid,
            mac_address=port.mac_address,
            ip_address=port.ip_address,
            created_at=port.created_at,
            vif_type="bridge",
        )


def network_of(conf: cfg.ConfigOpts) -> NetworkInfo:
    """The built-in network [network] describes; ConfigError names the option that is wrong."""
    group = conf.network
    try:
        network_id = str(uuidlib.UUID(group.network_id))
    except ValueError as exc:
        raise ConfigError("[network] network_id", f"{group.network_id!r} is not a UUID") from exc
    try:
        subnet = Subnet.parse(group.cidr, group.gateway)
    except InvalidSubnet as exc:
        option = "gateway" if str(exc).startswith("gateway") else "cidr"
        raise ConfigError(f"[network] {option}", str(exc)) from exc
    for server in group.dns_nameservers:
        if not is_ip_address(server):
            raise ConfigError("[network] dns_nameservers", f"{server!r} is not an IP address")
    return NetworkInfo(
        id=network_id,
        name=group.name,
        subnet_id=subnet_id_of(network_id),
        cidr=subnet.cidr,
        gateway=str(subnet.gateway),
        dns_nameservers=tuple(group.dns_nameservers),
        mtu=int(group.mtu),
        bridge=group.bridge,
    )


def driver_from_conf(conf: cfg.ConfigOpts | None) -> NetworkDriver:
    """The driver [network] driver names (none without a configuration: tests' apps)."""
    if conf is None or conf.network.driver == "none":
        return NoNetwork()
    return BuiltinNetwork(network_of(conf))
