"""[network] as the host's network driver reads it: the subnet, gateway and bridge, checked."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path

from oslo_config import cfg

from filemem.exceptions import ConfigError

NETWORK_DIR = "network"


@dataclass(frozen=True)
class NetworkSettings:
    """One built-in network: `gateway` is the bridge's own address inside `network`."""

    driver: str
    network: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    bridge: str
    mtu: int
    dns_nameservers: tuple[ipaddress.IPv4Address, ...]
    nat_interface: str | None
    state_dir: Path  # <state_path>/network: dnsmasq's hosts, leases, pid and log files

    @property
    def gateway_interface(self) -> ipaddress.IPv4Interface:
        """The bridge's address with the subnet's prefix ("10.98.0.1/24")."""
        return ipaddress.IPv4Interface(f"{self.gateway}/{self.network.prefixlen}")


def from_conf(conf: cfg.ConfigOpts) -> NetworkSettings:
    """The [network] options, or ConfigError naming the first one that cannot work."""
    group = conf.network
    network = parse_cidr(group.cidr)
    gateway = _gateway(group.gateway, network)
    dns = []
    for value in group.dns_nameservers:
        try:
            dns.append(ipaddress.IPv4Address(value.strip()))
        except ValueError:
            raise ConfigError(
                "[network] dns_nameservers", f"{value!r} is not an IPv4 address"
            ) from None
    nat = (group.nat_interface or "").strip() or None
    return NetworkSettings(
        driver=group.driver,
        network=network,
        gateway=gateway,
        bridge=group.bridge,
        mtu=int(group.mtu),
        dns_nameservers=tuple(dns),
        nat_interface=nat,
        state_dir=Path(conf.state_path) / NETWORK_DIR,
    )


def parse_cidr(value: str) -> ipaddress.IPv4Network:
    """An IPv4 subnet with room for a gateway and at least one guest (prefix <= /30)."""
    try:
        network = ipaddress.IPv4Network(value.strip(), strict=True)
    except ValueError as exc:
        raise ConfigError("[network] cidr", f"{value!r} is not an IPv4 subnet: {exc}") from None
    if network.prefixlen > 30:
        raise ConfigError(
            "[network] cidr", f"{value!r} leaves no address for guests: use /30 or larger"
        )
    return network


def _gateway(value: str | None, network: ipaddress.IPv4Network) -> ipaddress.IPv4Address:
    if not value:
        return network.network_address + 1
    try:
        gateway = ipaddress.IPv4Address(value.strip())
    except ValueError:
        raise ConfigError("[network] gateway", f"{value!r} is not an IPv4 address") from None
    if gateway not in network or gateway in (network.network_address, network.broadcast_address):
        raise ConfigError(
            "[network] gateway", f"{gateway} is not a host address of [network] cidr {network}"
        )
    return gateway
