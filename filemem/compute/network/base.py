"""The network driver seam: what the agent asks of a host's network, whatever provides it."""

from __future__ import annotations

import abc
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from filemem.common.agent_contract.answers import NicView
from filemem.common.guests import Nic
from filemem.exceptions import FilememError

# libvirt names the guest's tap after the port, as nova does ("tap" + the port id's first 11
# characters): at most 14, within Linux's 15-character interface names.
TAP_PREFIX = "tap"
TAP_PORT_CHARS = 11
_PORT_ID_RE = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class NetworkError(FilememError):
    """The host's network cannot be set up or cannot plug a port (the message says why)."""


class NetworkUnavailable(NetworkError):
    """This host has no network for guests ([network] driver = none) but one was asked for."""


@dataclass(frozen=True)
class InstancePorts:
    """One instance's ports as the host serves them: its hostname and NICs (the API's)."""

    uuid: str
    hostname: str | None
    nics: tuple[NicView, ...]


def tap_name(port_id: str) -> str:
    """The host-side interface of a port: tap<first 11 characters of the port id>."""
    if not _PORT_ID_RE.match(port_id):
        raise NetworkError(f"port id {port_id!r} is not a Neutron-style id (letters, digits, -)")
    return TAP_PREFIX + port_id[:TAP_PORT_CHARS]


class NetworkDriver(abc.ABC):
    """Plugs and unplugs guests' ports on this host; the API allocates ports and addresses.

    The agent calls ensure_ready before it uses the network, sync with its whole desired set
    at every reconcile pass (level-triggered: what a restarted agent needs to converge), plug
    before it defines a guest with NICs and unplug once the guest is destroyed.
    """

    name: str = ""

    @abc.abstractmethod
    def ensure_ready(self) -> None:
        """Make the host's side of the network exist and work; idempotent, cheap when it does."""

    @abc.abstractmethod
    def plug(self, ports: InstancePorts) -> tuple[Nic, ...]:
        """Make the ports reachable (addresses served) and return the guest NICs to define, in
        order; NetworkError when this host cannot plug them."""

    @abc.abstractmethod
    def unplug(self, uuid: str) -> None:
        """Forget the instance's ports (its taps go with its domain); idempotent."""

    @abc.abstractmethod
    def sync(self, instances: Iterable[InstancePorts]) -> None:
        """Serve exactly these instances' ports (the agent's desired set, deletions left out)."""


class NoNetwork(NetworkDriver):
    """[network] driver = none: no bridge and no DHCP; an instance with NICs is refused."""

    name = "none"

    def ensure_ready(self) -> None:
        pass

    def plug(self, ports: InstancePorts) -> tuple[Nic, ...]:
        if ports.nics:
            raise NetworkUnavailable(
                f"instance {ports.uuid} has {len(ports.nics)} network interface(s) but this "
                "host has no network for guests ([network] driver = none): boot it with "
                "networks 'none', or set [network] driver = builtin on the host"
            )
        return ()

    def unplug(self, uuid: str) -> None:
        pass

    def sync(self, instances: Iterable[InstancePorts]) -> None:
        pass


def bridge_nics(ports: InstancePorts, bridge: str, mtu: int) -> tuple[Nic, ...]:
    """The guest NICs of ports on a Linux bridge (vif_type "bridge"), in the API's order."""
    nics: Sequence[NicView] = ports.nics
    refused = [nic.port_id for nic in nics if nic.vif_type != "bridge"]
    if refused:
        raise NetworkError(
            f"instance {ports.uuid}: ports {', '.join(refused)} are not of vif_type 'bridge', "
            "the only one [network] driver = builtin plugs"
        )
    return tuple(
        Nic(mac_address=nic.mac_address, bridge=bridge, target=tap_name(nic.port_id), mtu=mtu)
        for nic in nics
    )
