"""Address policy of the built-in network (pure): which IPv4 address is free, and new MACs."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass

# The prefix nova-network and Neutron's default base_mac give every port ("fa:16:3e").
MAC_PREFIX = (0xFA, 0x16, 0x3E)


class InvalidSubnet(ValueError):
    """The configured cidr or gateway cannot carry guests."""


@dataclass(frozen=True)
class Subnet:
    """An IPv4 subnet with its gateway: guests get any address but these and the network's
    own and broadcast addresses."""

    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address

    @classmethod
    def parse(cls, cidr: str, gateway: str | None = None) -> Subnet:
        """From [network] cidr and gateway (default: the first host address); InvalidSubnet
        says which of the two is wrong."""
        try:
            network = ipaddress.IPv4Network(cidr, strict=True)
        except ValueError as exc:
            raise InvalidSubnet(f"cidr {cidr!r} is not an IPv4 network: {exc}") from exc
        if network.prefixlen > 29:
            raise InvalidSubnet(f"cidr {cidr}: at most /29, so guests have addresses left")
        if gateway is None:
            return cls(network, network.network_address + 1)
        try:
            address = ipaddress.IPv4Address(gateway)
        except ValueError as exc:
            raise InvalidSubnet(f"gateway {gateway!r} is not an IPv4 address") from exc
        edges = (network.network_address, network.broadcast_address)
        if address not in network or address in edges:
            raise InvalidSubnet(f"gateway {gateway} is not a host address of {cidr}")
        return cls(network, address)

    @property
    def cidr(self) -> str:
        return str(self.network)

    def reserved(self, address: ipaddress.IPv4Address) -> bool:
        return address in (
            self.network.network_address,
            self.network.broadcast_address,
            self.gateway,
        )

    @property
    def capacity(self) -> int:
        """How many guests' addresses the subnet holds."""
        return self.network.num_addresses - 3

    def why_not_fixed(self, address: str) -> str | None:
        """Why `address` cannot be a guest's fixed IP here (None: it can, if it is free)."""
        try:
            ip = ipaddress.IPv4Address(address)
        except ValueError:
            return f"{address} is not an IPv4 address"
        if ip not in self.network:
            return f"{address} is not in the subnet {self.cidr}"
        if self.reserved(ip):
            return f"{address} is the network, broadcast or gateway address of {self.cidr}"
        return None

    def first_free(self, used: Collection[str]) -> str | None:
        """The lowest guest address not in `used`, or None when every one is taken."""
        taken = set(used)
        for ip in self.network.hosts():
            if not self.reserved(ip) and str(ip) not in taken:
                return str(ip)
        return None


def mac_address(random_bytes: Callable[[int], bytes] = secrets.token_bytes) -> str:
    """fa:16:3e and three random bytes, as nova and Neutron generate them (unicast, local)."""
    return ":".join(f"{byte:02x}" for byte in (*MAC_PREFIX, *random_bytes(3)))


def is_ip_address(value: str) -> bool:
    """Whether `value` is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
