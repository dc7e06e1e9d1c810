"""The network seam of the API: a driver allocates each instance's ports and addresses.

The agent plugs what the API allocated (NicView in the agent contract) and never chooses a
port or an address. The built-in driver (`builtin`) keeps ports in SQL and allocates in the
instance's create transaction; a Neutron driver would create ports in Neutron instead (its
`allocate_for_instance` may record the request and create them after scheduling, when the
host is known) and answer vif_type "ovs" with os-vif's details. `none` keeps servers
without networks.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from filemem.db.ports import PortFilter
from filemem.exceptions import FilememError

__all__ = [
    "AUTO",
    "FixedIpAlreadyInUse",
    "FixedIpInvalid",
    "NetworkDriver",
    "NetworkError",
    "NetworkInfo",
    "NetworkNotFound",
    "NetworkRequest",
    "NetworkingDisabled",
    "NoMoreFixedIps",
    "PortFilter",
    "PortInfo",
]


class NetworkError(FilememError):
    """A request the network driver cannot serve; the message is nova's, for the caller."""


class NetworkNotFound(NetworkError):
    def __init__(self, network_id: str) -> None:
        super().__init__(f"Network {network_id} could not be found.")


class FixedIpInvalid(NetworkError):
    def __init__(self, address: str, network_id: str, why: str) -> None:
        super().__init__(
            f"Fixed IP {address} is not a valid ip address for network {network_id}: {why}."
        )


class FixedIpAlreadyInUse(NetworkError):
    def __init__(self, address: str, instance_uuid: str | None = None) -> None:
        if instance_uuid is None:
            super().__init__(f"Fixed IP {address} is already in use.")
        else:
            super().__init__(
                f"Fixed IP address {address} is already in use on instance {instance_uuid}."
            )


class NoMoreFixedIps(NetworkError):
    def __init__(self, network_id: str) -> None:
        super().__init__(f"No fixed IP addresses available for network: {network_id}")


class NetworkingDisabled(NetworkError):
    """[network] driver = none, and the request asks for a network."""


@dataclass(frozen=True)
class NetworkRequest:
    """One interface asked for: on `network_id` (None: the default network), with
    `fixed_ip` when the caller chose the address."""

    network_id: str | None = None
    fixed_ip: str | None = None


# networks "auto": one interface on the default network.
AUTO: tuple[NetworkRequest, ...] = (NetworkRequest(),)


@dataclass(frozen=True)
class NetworkInfo:
    """A network with its one IPv4 subnet, as Neutron would show them."""

    id: str
    name: str
    subnet_id: str
    cidr: str
    gateway: str
    dns_nameservers: tuple[str, ...] = ()
    mtu: int = 1500
    # What the agent plugs into: for the built-in driver, the Linux bridge's name.
    bridge: str | None = None


@dataclass(frozen=True)
class PortInfo:
    """One instance's interface: what the API shows and what the agent plugs."""

    id: str
    network: NetworkInfo
    instance_uuid: str
    mac_address: str
    ip_address: str | None
    created_at: dt.datetime
    vif_type: str = "bridge"
    vif_details: Mapping[str, Any] = field(default_factory=dict)


class NetworkDriver(abc.ABC):
    """Where instances' ports come from. Every method that reads or writes ports takes the
    caller's session, so allocation is part of the transaction that creates the instance
    and release part of the one that ends it."""

    enabled: bool = True

    @abc.abstractmethod
    def list_networks(self) -> list[NetworkInfo]:
        """The networks instances may be attached to."""

    def show_network(self, network_id: str) -> NetworkInfo:
        """The network; NetworkNotFound when there is none of that id."""
        for network in self.list_networks():
            if network.id == network_id:
                return network
        raise NetworkNotFound(network_id)

    @abc.abstractmethod
    def validate(self, session: Session, requested: Sequence[NetworkRequest], count: int) -> None:
        """Refuse (a NetworkError) what no allocation could serve, before any row exists:
        an unknown network, a fixed IP outside its subnet or already used."""

    @abc.abstractmethod
    def allocate_for_instance(
        self, session: Session, instance_uuid: str, requested: Sequence[NetworkRequest]
    ) -> list[PortInfo]:
        """A port for each request, in order. NoMoreFixedIps when a network is full,
        FixedIpAlreadyInUse when a chosen address was taken meanwhile (the caller's
        transaction then holds the ports made so far: roll back or deallocate)."""

    @abc.abstractmethod
    def deallocate_for_instance(self, session: Session, instance_uuid: str) -> None:
        """Release every port of the instance (idempotent)."""

    @abc.abstractmethod
    def ports_of(
        self, session: Session, instance_uuids: Collection[str]
    ) -> dict[str, list[PortInfo]]:
        """instance uuid -> its ports in the guest's order, in one read."""

    @abc.abstractmethod
    def list_ports(self, session: Session, where: PortFilter) -> list[PortInfo]:
        """Ports matching the filter (Neutron's port list)."""

    @abc.abstractmethod
    def show_port(self, session: Session, port_id: str) -> PortInfo | None:
        """The port, or None."""


class NoNetwork(NetworkDriver):
    """[network] driver = none: servers have no interfaces and ask for none."""

    enabled = False

    def list_networks(self) -> list[NetworkInfo]:
        return []

    def validate(self, session: Session, requested: Sequence[NetworkRequest], count: int) -> None:
        if requested:
            raise NetworkingDisabled(
                'filemem has no networking ([network] driver = none): use networks "none"'
            )

    def allocate_for_instance(
        self, session: Session, instance_uuid: str, requested: Sequence[NetworkRequest]
    ) -> list[PortInfo]:
        self.validate(session, requested, 1)
        return []

    def deallocate_for_instance(self, session: Session, instance_uuid: str) -> None:
        return None

    def ports_of(
        self, session: Session, instance_uuids: Collection[str]
    ) -> dict[str, list[PortInfo]]:
        return {uuid: [] for uuid in instance_uuids}

    def list_ports(self, session: Session, where: PortFilter) -> list[PortInfo]:
        return []

    def show_port(self, session: Session, port_id: str) -> PortInfo | None:
        return None
