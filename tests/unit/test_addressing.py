"""The built-in network's address policy: free addresses, fixed IPs, MACs, config errors."""

from __future__ import annotations

import re

import pytest

from filemem.common.addressing import InvalidSubnet, Subnet, is_ip_address, mac_address


def test_first_free_skips_network_gateway_and_broadcast() -> None:
    subnet = Subnet.parse("10.98.0.0/29")
    assert str(subnet.gateway) == "10.98.0.1"
    assert subnet.capacity == 5
    used: list[str] = []
    while (address := subnet.first_free(used)) is not None:
        used.append(address)
    assert used == [f"10.98.0.{n}" for n in range(2, 7)]


def test_first_free_fills_holes_first() -> None:
    subnet = Subnet.parse("192.168.5.0/24")
    assert subnet.first_free({"192.168.5.2", "192.168.5.4"}) == "192.168.5.3"


def test_a_gateway_in_the_middle_is_never_handed_out() -> None:
    subnet = Subnet.parse("10.0.0.0/29", "10.0.0.4")
    used: list[str] = []
    while (address := subnet.first_free(used)) is not None:
        used.append(address)
    assert used == ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.5", "10.0.0.6"]


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("10.98.0.7", None),
        ("10.98.1.7", "is not in the subnet 10.98.0.0/24"),
        ("10.98.0.0", "is the network, broadcast or gateway address"),
        ("10.98.0.1", "is the network, broadcast or gateway address"),
        ("10.98.0.255", "is the network, broadcast or gateway address"),
        ("fe80::1", "is not an IPv4 address"),
        ("nonsense", "is not an IPv4 address"),
    ],
)
def test_why_not_fixed(address: str, why: str | None) -> None:
    found = Subnet.parse("10.98.0.0/24").why_not_fixed(address)
    assert (found is None) if why is None else (found is not None and why in found)


@pytest.mark.parametrize(
    ("cidr", "gateway", "names"),
    [
        ("10.98.0.0/33", None, "cidr"),
        ("10.98.0.1/24", None, "cidr"),  # host bits set
        ("fd00::/64", None, "cidr"),
        ("10.98.0.0/30", None, "cidr"),  # no room for guests beside the gateway
        ("10.98.0.0/24", "10.98.1.1", "gateway"),
        ("10.98.0.0/24", "10.98.0.255", "gateway"),
        ("10.98.0.0/24", "x", "gateway"),
    ],
)
def test_invalid_subnets_name_the_option(cidr: str, gateway: str | None, names: str) -> None:
    with pytest.raises(InvalidSubnet, match=f"^{names} "):
        Subnet.parse(cidr, gateway)


def test_macs_are_openstack_style_and_random() -> None:
    assert mac_address(lambda n: bytes([0xAB, 0x01, 0xFF])) == "fa:16:3e:ab:01:ff"
    macs = {mac_address() for _ in range(50)}
    assert len(macs) == 50
    assert all(re.fullmatch(r"fa:16:3e(:[0-9a-f]{2}){3}", mac) for mac in macs)


def test_is_ip_address() -> None:
    assert is_ip_address("10.0.0.1") and is_ip_address("::1")
    assert not is_ip_address("10.0.0.256") and not is_ip_address("010.0.0.1")
