"""The built-in network's pure parts: [network] checks, dnsmasq's argv, hosts and lease files,
NIC mapping, and the guest's <interface> XML."""

from __future__ import annotations

import ipaddress
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from oslo_config import cfg

from filemem import conf as filemem_conf
from filemem.common.agent_contract.answers import NicView
from filemem.common.guests import Flavor, GuestRequest, HostFacts, Image, Nic
from filemem.compute.network import dnsmasq, settings
from filemem.compute.network.base import (
    InstancePorts,
    NetworkError,
    NetworkUnavailable,
    NoNetwork,
    bridge_nics,
    tap_name,
)
from filemem.compute.network.bridge import nat_rules
from filemem.compute.network.setup import check_network, driver_from_conf
from filemem.exceptions import ConfigError, InvalidGuestConfig
from filemem.virt.guest_config import build_domain

NET = ipaddress.IPv4Network("10.98.0.0/24")
PORT = "3f1b2c4d-5e6f-4a8b-9c0d-112233445566"


def load(tmp_path: Path, **network: str) -> settings.NetworkSettings:
    lines = ["[DEFAULT]", f"state_path = {tmp_path / 'state'}", "[network]"]
    lines += [f"{key} = {value}" for key, value in network.items()]
    path = tmp_path / "filemem.conf"
    path.write_text("\n".join(lines) + "\n")
    return settings.from_conf(filemem_conf.load(config_files=[str(path)]))


def nic(
    mac: str = "fa:16:3e:00:00:0a",
    ip: str | None = "10.98.0.10",
    port_id: str = PORT,
    vif_type: str = "bridge",
) -> NicView:
    return NicView(
        port_id=port_id,
        mac_address=mac,
        network_id="net",
        network_name="private",
        ip_address=ip,
        vif_type=vif_type,
    )


# --- [network] -----------------------------------------------------------------------------


def test_defaults_put_the_gateway_on_the_first_address(tmp_path: Path) -> None:
    s = load(tmp_path)
    assert (str(s.network), str(s.gateway), s.bridge, s.mtu) == (
        "10.98.0.0/24",
        "10.98.0.1",
        "fmguest0",
        1500,
    )
    assert str(s.gateway_interface) == "10.98.0.1/24"
    assert s.state_dir == tmp_path / "state" / "network"
    assert s.nat_interface is None


@pytest.mark.parametrize(
    ("options", "option"),
    [
        ({"cidr": "10.98.0.0/33"}, "[network] cidr"),
        ({"cidr": "10.98.0.1/24"}, "[network] cidr"),  # host bits set: a typo, not a subnet
        ({"cidr": "not-a-net"}, "[network] cidr"),
        ({"cidr": "10.98.0.0/31"}, "[network] cidr"),
        ({"gateway": "10.99.0.1"}, "[network] gateway"),
        ({"gateway": "10.98.0.255"}, "[network] gateway"),
        ({"gateway": "nope"}, "[network] gateway"),
        ({"dns_nameservers": "8.8.8.8,bad"}, "[network] dns_nameservers"),
    ],
)
def test_options_that_cannot_work_are_refused_by_name(
    tmp_path: Path, options: dict[str, str], option: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load(tmp_path, **options)
    assert raised.value.option == option
    assert str(raised.value).startswith(option)


def test_driver_none_refuses_nics_naming_the_option(tmp_path: Path) -> None:
    path = tmp_path / "filemem.conf"
    path.write_text("[network]\ndriver = none\n")
    driver = driver_from_conf(filemem_conf.load(config_files=[str(path)]))
    assert isinstance(driver, NoNetwork)
    assert driver.plug(InstancePorts("u1", None, ())) == ()
    with pytest.raises(NetworkUnavailable, match=r"\[network\] driver = none"):
        driver.plug(InstancePorts("u1", None, (nic(),)))


def _conf(tmp_path: Path, text: str) -> cfg.ConfigOpts:
    path = tmp_path / "filemem.conf"
    path.write_text(f"[DEFAULT]\nstate_path = {tmp_path}\n[network]\n{text}")
    return filemem_conf.load(config_files=[str(path)])


def test_the_startup_check_names_an_invalid_cidr(tmp_path: Path) -> None:
    found = check_network(_conf(tmp_path, "cidr = 10.98.0.0/8x\n"))
    assert [(f.severity.name, f.option) for f in found] == [("ERROR", "[network] cidr")]


def test_the_startup_check_wants_dnsmasq(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("filemem.compute.network.setup.shutil.which", lambda name: None)
    found = check_network(_conf(tmp_path, "bridge = fmnone0\n"))
    assert [(f.severity.name, f.option) for f in found] == [("ERROR", "[network] driver")]
    assert "dnsmasq-base" in found[0].message


def test_the_startup_check_wants_the_nat_interface_to_exist(tmp_path: Path) -> None:
    found = check_network(_conf(tmp_path, "bridge = fmnone0\nnat_interface = nosuch0\n"))
    assert [(f.severity.name, f.option) for f in found if f.severity.name == "ERROR"] == [
        ("ERROR", "[network] nat_interface")
    ]


def test_the_startup_check_passes_a_driver_none_host(tmp_path: Path) -> None:
    found = check_network(_conf(tmp_path, "driver = none\ncidr = nonsense\n"))
    assert [f.severity.name for f in found] == ["OK"]


# --- dnsmasq -------------------------------------------------------------------------------


def test_dnsmasq_argv_serves_static_leases_on_the_bridge_only(tmp_path: Path) -> None:
    s = load(tmp_path)
    state = s.state_dir
    assert dnsmasq.argv("/usr/sbin/dnsmasq", s) == [
        "/usr/sbin/dnsmasq",
        "--conf-file=/dev/null",
        "--port=0",
        "--interface=fmguest0",
        "--bind-interfaces",
        "--except-interface=lo",
        "--no-resolv",
        "--no-hosts",
        "--dhcp-range=10.98.0.0,static,255.255.255.0,1h",
        f"--dhcp-hostsfile={state / 'hosts'}",
        f"--dhcp-leasefile={state / 'dnsmasq.leases'}",
        f"--pid-file={state / 'dnsmasq.pid'}",
        f"--log-facility={state / 'dnsmasq.log'}",
        "--dhcp-option=3,10.98.0.1",
    ]


def test_dnsmasq_argv_hands_out_dns_servers_and_a_non_standard_mtu(tmp_path: Path) -> None:
    s = load(tmp_path, dns_nameservers="9.9.9.9, 1.1.1.1", mtu="1400", gateway="10.98.0.254")
    args = dnsmasq.argv("dnsmasq", s)
    assert args[-3:] == [
        "--dhcp-option=3,10.98.0.254",
        "--dhcp-option=6,9.9.9.9,1.1.1.1",
        "--dhcp-option=26,1400",
    ]


def test_hosts_file_lists_each_port_once_sorted_by_address() -> None:
    instances = [
        InstancePorts("b", "web-2", (nic("FA:16:3E:00:00:0B", "10.98.0.20", port_id="p2"),)),
        InstancePorts(
            "a",
            "Web-1",
            (nic("fa:16:3e:00:00:0a", "10.98.0.10"), nic("fa:16:3e:00:00:0c", "10.98.0.5")),
        ),
    ]
    text = dnsmasq.hosts_text(dnsmasq.host_entries(instances, NET))
    assert text == (
        "fa:16:3e:00:00:0c,10.98.0.5,web-1\n"
        "fa:16:3e:00:00:0a,10.98.0.10,web-1\n"
        "fa:16:3e:00:00:0b,10.98.0.20,web-2\n"
    )


@pytest.mark.parametrize(
    "hostname", ["a,b", "x\nfa:16:3e:00:00:99,10.98.0.99", "-bad", "a" * 64, "dot.ted", None]
)
def test_a_hostname_that_is_no_dns_label_is_left_out(hostname: str | None) -> None:
    entries = dnsmasq.host_entries([InstancePorts("a", hostname, (nic(),))], NET)
    assert dnsmasq.hosts_text(entries) == "fa:16:3e:00:00:0a,10.98.0.10\n"


def test_ports_dnsmasq_cannot_serve_are_skipped() -> None:
    instances = [
        InstancePorts("a", "one", (nic(ip="10.99.0.10"), nic(ip=None), nic(mac="nope"))),
        InstancePorts("b", "one", (nic(ip="10.98.0.11"),)),  # same MAC as c's below: first wins
        InstancePorts("c", "two", (nic(ip="10.98.0.12"), nic("fa:16:3e:00:00:0d", "10.98.0.11"))),
    ]
    text = dnsmasq.hosts_text(dnsmasq.host_entries(instances, NET))
    assert text == "fa:16:3e:00:00:0a,10.98.0.11,one\n"


def test_lease_file_is_parsed_and_torn_lines_skipped() -> None:
    text = (
        "1765120000 fa:16:3e:00:00:0a 10.98.0.10 vm-1 01:fa:16:3e:00:00:0a\n"
        "1765120001 FA:16:3E:00:00:0B 10.98.0.11 * *\n"
        "duid 00:01:00:01\n"
        "17651\n"
    )
    assert dnsmasq.parse_leases(text) == [
        dnsmasq.Lease(1765120000, "fa:16:3e:00:00:0a", "10.98.0.10", "vm-1"),
        dnsmasq.Lease(1765120001, "fa:16:3e:00:00:0b", "10.98.0.11", None),
    ]


# --- NICs and the guest's XML --------------------------------------------------------------


def test_bridge_nics_keep_the_order_and_name_taps_after_ports() -> None:
    ports = InstancePorts("u", None, (nic(), nic("fa:16:3e:00:00:0b", port_id="abc")))
    assert bridge_nics(ports, "fmbr0", 1400) == (
        Nic("fa:16:3e:00:00:0a", "fmbr0", "tap3f1b2c4d-5e", 1400),
        Nic("fa:16:3e:00:00:0b", "fmbr0", "tapabc", 1400),
    )


def test_a_port_of_another_vif_type_is_refused() -> None:
    ports = InstancePorts("u", None, (nic(vif_type="ovs"),))
    with pytest.raises(NetworkError, match="vif_type 'bridge'"):
        bridge_nics(ports, "fmbr0", 1500)


@pytest.mark.parametrize("port_id", ["", "a/b", "tap 1", "x" * 65])
def test_a_port_id_that_cannot_name_a_tap_is_refused(port_id: str) -> None:
    with pytest.raises(NetworkError):
        tap_name(port_id)


def _request(*nics: Nic) -> GuestRequest:
    return GuestRequest(
        name="vm1",
        uuid="0b7cbd6d-4b3f-4c63-9a7e-3b6a4c6f6f01",
        flavor=Flavor(name="tiny", vcpus=1, memory_mb=256),
        image=Image(kind="kernel", kernel=Path("/k")),
        console_log=Path("/tmp/console.log"),
        nics=nics,
    )


HOST = HostFacts(virt_type="qemu", file_backed_memory_mb=1024, discard_supported=True)


def test_each_nic_is_a_virtio_interface_on_its_bridge_in_order() -> None:
    first = Nic("FA:16:3E:00:00:0A", "fmbr0", "tap3f1b2c4d-5e", 1400)
    second = Nic("fa:16:3e:00:00:0b", "fmbr0")
    root = ET.fromstring(build_domain(_request(first, second), HOST).to_xml())
    interfaces = [
        ET.canonicalize(ET.tostring(i), strip_text=True) for i in root.findall("devices/interface")
    ]
    assert interfaces == [
        '<interface type="bridge"><mac address="fa:16:3e:00:00:0a"></mac>'
        '<source bridge="fmbr0"></source><model type="virtio"></model><mtu size="1400"></mtu>'
        '<target dev="tap3f1b2c4d-5e"></target></interface>',
        '<interface type="bridge"><mac address="fa:16:3e:00:00:0b"></mac>'
        '<source bridge="fmbr0"></source><model type="virtio"></model></interface>',
    ]


def test_no_nics_no_interface() -> None:
    root = ET.fromstring(build_domain(_request(), HOST).to_xml())
    assert root.findall("devices/interface") == []


@pytest.mark.parametrize(
    "bad",
    [
        Nic("01:16:3e:00:00:0a", "fmbr0"),  # multicast
        Nic("fa:16:3e:00:00", "fmbr0"),
        Nic("fa:16:3e:00:00:0a", "br'0\"/x"),
        Nic("fa:16:3e:00:00:0a", "fmbr0", target="a-tap-name-too-long"),
    ],
)
def test_a_nic_libvirt_would_refuse_is_refused_first(bad: Nic) -> None:
    with pytest.raises(InvalidGuestConfig):
        build_domain(_request(bad), HOST)


def test_nat_rules_masquerade_only_traffic_leaving_the_network() -> None:
    rules = nat_rules(NET, "fmbr0", "eth0")
    assert rules[0] == (
        "nat",
        "POSTROUTING",
        ["-s", "10.98.0.0/24", "!", "-d", "10.98.0.0/24", "-o", "eth0", "-j", "MASQUERADE"],
    )
    assert [(table, chain) for table, chain, _ in rules[1:]] == [("filter", "FORWARD")] * 2
