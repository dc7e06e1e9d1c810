"""The built-in network's host plumbing: the Linux bridge (over netlink, pyroute2) and the
optional NAT out of the host (iptables, list argv, each rule checked before it is added)."""

from __future__ import annotations

import ipaddress
import logging
import shutil
import subprocess
from pathlib import Path

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from filemem.compute.network.base import NetworkError

LOG = logging.getLogger(__name__)

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")
_AF_INET = 2


def device_kind(name: str) -> str | None:
    """None when no device has this name; else its link kind ("bridge", "veth", "" for a
    plain device such as a physical NIC or lo)."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if not found:
            return None
        info = ipr.get_links(found[0])[0].get("IFLA_LINKINFO")
    kind = info.get("IFLA_INFO_KIND") if info is not None else None
    return str(kind or "")


def ensure_bridge(name: str, address: ipaddress.IPv4Interface, mtu: int) -> None:
    """The bridge exists, is up, has this MTU and this address; what is already so is kept
    (a restarted agent changes nothing), another device of that name is refused."""
    try:
        with IPRoute() as ipr:
            if not ipr.link_lookup(ifname=name):
                ipr.link("add", ifname=name, kind="bridge")
                LOG.info("created bridge %s", name)
            index = ipr.link_lookup(ifname=name)[0]
            info = ipr.get_links(index)[0].get("IFLA_LINKINFO")
            if info is None or info.get("IFLA_INFO_KIND") != "bridge":
                raise NetworkError(
                    f"[network] bridge: {name} is a network device that is not a bridge; "
                    "choose another name"
                )
            ipr.link("set", index=index, mtu=mtu, state="up")
            have = {
                (a.get("IFA_ADDRESS"), a["prefixlen"])
                for a in ipr.get_addr(index=index, family=_AF_INET)
            }
            if (str(address.ip), address.network.prefixlen) not in have:
                ipr.addr(
                    "add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen
                )
                LOG.info("bridge %s has address %s", name, address)
    except NetlinkError as exc:
        raise NetworkError(f"setting up bridge {name} ([network] bridge): {exc}") from exc


def delete_bridge(name: str) -> None:
    """Remove the bridge (tests, and an operator's clean-up); missing is fine."""
    with IPRoute() as ipr:
        found = ipr.link_lookup(ifname=name)
        if found:
            ipr.link("del", index=found[0])


def nat_rules(
    network: ipaddress.IPv4Network, bridge: str, interface: str
) -> list[tuple[str, str, list[str]]]:
    """(table, chain, rule) for masquerading the network out of `interface`: its traffic out,
    and the answers back in, forwarded even where the FORWARD policy drops."""
    cidr = str(network)
    return [
        ("nat", "POSTROUTING", ["-s", cidr, "!", "-d", cidr, "-o", interface, "-j", "MASQUERADE"]),
        ("filter", "FORWARD", ["-i", bridge, "-o", interface, "-s", cidr, "-j", "ACCEPT"]),
        (
            "filter",
            "FORWARD",
            [
                "-i",
                interface,
                "-o",
                bridge,
                "-d",
                cidr,
                "-m",
                "conntrack",
                "--ctstate",
                "RELATED,ESTABLISHED",
                "-j",
                "ACCEPT",
            ],
        ),
    ]


def ensure_nat(network: ipaddress.IPv4Network, bridge: str, interface: str) -> None:
    """ip_forward on and the NAT rules present (each checked with -C before it is added)."""
    iptables = shutil.which("iptables")
    if iptables is None:
        raise NetworkError("[network] nat_interface is set but iptables is not installed")
    if IP_FORWARD.read_text().strip() != "1":
        IP_FORWARD.write_text("1\n")
        LOG.info("enabled IPv4 forwarding for [network] nat_interface %s", interface)
    for table, chain, rule in nat_rules(network, bridge, interface):
        check = [iptables, "-w", "-t", table, "-C", chain, *rule]
        if subprocess.run(check, capture_output=True, check=False).returncode == 0:
            continue
        # FORWARD rules go first: a DROP policy's chains (docker's, a firewall's) come later.
        add = [iptables, "-w", "-t", table, "-I" if chain == "FORWARD" else "-A", chain, *rule]
        result = subprocess.run(add, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise NetworkError(
                f"adding the NAT rule {' '.join(rule)} ([network] nat_interface): "
                f"{result.stderr.strip()}"
            )
        LOG.info("added iptables rule -t %s %s %s", table, chain, " ".join(rule))
