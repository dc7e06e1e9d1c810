"""The simulated cloud's pure parts: names, addresses, host options, libvirt config text."""

from __future__ import annotations

import pytest

from devtools.cloud.guest import raw_guest_xml
from devtools.cloud.spec import (
    HostSpec,
    build_spec,
    libvirtd_conf,
    parse_host_option,
    pick_subnet_index,
    qemu_conf,
)
from filemem.exceptions import InvalidInput


def test_addresses_and_names() -> None:
    spec = build_spec("demo", 3, 7)
    assert spec.gateway == "10.213.7.1"
    assert [spec.address_of(h) for h in spec.hosts] == ["10.213.7.11", "10.213.7.12", "10.213.7.13"]
    assert spec.bridge == "fmbr7"
    assert all(len(spec.veth(h)) <= 15 for h in spec.hosts)
    assert spec.netns(spec.hosts[0]) == "fm-demo-host1"
    assert spec.libvirt_uri(spec.hosts[2]) == "qemu+tcp://10.213.7.13/system"


@pytest.mark.parametrize("name", ["", "Demo", "1abc", "a/b", "../x", "toolongname"])
def test_bad_names_refused(name: str) -> None:
    with pytest.raises(InvalidInput, match="cloud name"):
        build_spec(name, 2, 1)


def test_host_options() -> None:
    assert parse_host_option("2:file_backed=off") == (2, HostSpec(2, 1024, False))
    assert parse_host_option("1:store_mb=512") == (1, HostSpec(1, 512, True))
    assert HostSpec(1, 512, True).file_backed_memory_mb == 448
    assert HostSpec(1, 512, False).file_backed_memory_mb == 0
    for bad in ("x:store_mb=1", "2:store_mb=10", "2:file_backed=maybe", "2:color=red", "0:"):
        with pytest.raises(InvalidInput, match="--host"):
            parse_host_option(bad)
    with pytest.raises(InvalidInput, match="only 2 hosts"):
        build_spec("demo", 2, 1, {3: HostSpec(3)})
    spec = build_spec("demo", 2, 1, {2: HostSpec(2, 512, False)})
    assert spec.hosts == (HostSpec(1), HostSpec(2, 512, False))


def test_subnet_avoids_existing_addresses_and_clouds() -> None:
    addrs = "4: eth0    inet 10.213.1.5/24 brd x\n5: x inet 10.0.0.0/8 scope\n"
    # 10.0.0.0/8 overlaps every 10.213.k: nothing left
    with pytest.raises(InvalidInput):
        pick_subnet_index(addrs, set())
    assert pick_subnet_index("inet 10.213.1.5/24 ", {2}) == 3
    assert pick_subnet_index("inet 192.0.2.2/24 ", set()) == 1


def test_libvirt_config_text() -> None:
    text = libvirtd_conf("# system\n", "10.213.1.11", "0b7d1f0e-4a53-4b59-9b86-7f0c3b1a2c3d")
    assert 'listen_addr = "10.213.1.11"' in text and "listen_tcp = 1" in text
    assert text.startswith("# system\n")
    with pytest.raises(ValueError):
        libvirtd_conf("", 'x" ; evil', "0b7d1f0e-4a53-4b59-9b86-7f0c3b1a2c3d")
    qemu = qemu_conf("", "10.213.1.12")
    assert 'migration_address = "10.213.1.12"' in qemu
    assert 'memory_backing_dir = "/var/lib/libvirt/qemu/ram"' in qemu


def test_raw_guest_xml_escapes_and_backs_memory_by_file() -> None:
    from pathlib import Path

    xml = raw_guest_xml(
        "g<1>", kernel=Path("/k"), initrd=Path("/i"), cmdline="a&b", serial_log=Path("/l")
    )
    assert "<name>g&lt;1&gt;</name>" in xml and "a&amp;b" in xml
    assert '<source type="file" />' in xml and '<source path="/l" />' in xml
    assert "memoryBacking" not in raw_guest_xml(
        "g", kernel=Path("/k"), initrd=Path("/i"), cmdline="", file_backed=False
    )
