"""Guest config policy: memory backing, huge pages, boot source, console, version gates."""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from filemem.common.guests import Flavor, GuestRequest, HostFacts, Image
from filemem.common.versions import discard_supported, parse_version
from filemem.exceptions import InvalidGuestConfig
from filemem.virt.guest_config import build_domain, is_file_backed, memory_mb
from filemem.virt.xml import Domain

FIXTURES = Path(__file__).parent / "fixtures" / "xml"
UUID = "0b6a4b8e-6f3e-4c36-9a0e-6c1f2d3e4f50"
LOG = Path("/var/lib/filemem/instances/vm1/console.log")
KERNEL = Image(
    kind="kernel",
    kernel=Path("/var/lib/filemem/images/vmlinuz"),
    initrd=Path("/var/lib/filemem/images/initrd.img"),
    cmdline="quiet",
)
DISK = Image(kind="disk", disk=Path("/var/lib/filemem/images/debian.qcow2"))
FILE_HOST = HostFacts(virt_type="qemu", file_backed_memory_mb=4096, discard_supported=True)
RAM_HOST = HostFacts(virt_type="kvm", file_backed_memory_mb=0, discard_supported=True)


def canon(xml: str) -> str:
    return ET.canonicalize(xml_data=xml, strip_text=True)


def request(
    image: Image = KERNEL, extra_specs: dict[str, str] | None = None, overlay: Path | None = None
) -> GuestRequest:
    flavor = Flavor(name="tiny", vcpus=1, memory_mb=256, extra_specs=extra_specs or {})
    return GuestRequest(
        name="vm1", uuid=UUID, flavor=flavor, image=image, console_log=LOG, overlay=overlay
    )


def built(req: GuestRequest, host: HostFacts) -> ET.Element:
    """The domain as libvirt would receive it: the serialized XML, parsed again."""
    return ET.fromstring(build_domain(req, host).to_xml())


def one(root: ET.Element, path: str) -> ET.Element:
    found = root.find(path)
    assert found is not None, f"no {path} in the domain"
    return found


def one_xml(root: ET.Element, path: str) -> str:
    return canon(ET.tostring(one(root, path), encoding="unicode"))


def memory_backing_xml(req: GuestRequest, host: HostFacts) -> str | None:
    root = built(req, host)
    return None if root.find("memoryBacking") is None else one_xml(root, "memoryBacking")


# --- memory backing ---------------------------------------------------------------------------


def test_file_backed_host_gets_exactly_the_guide_memory_backing() -> None:
    assert memory_backing_xml(request(), FILE_HOST) == canon(
        '<memoryBacking><source type="file"/><access mode="shared"/>'
        '<allocation mode="immediate"/><discard/></memoryBacking>'
    )


def test_discard_is_absent_when_not_supported() -> None:
    host = dataclasses.replace(FILE_HOST, discard_supported=False)
    assert memory_backing_xml(request(), host) == canon(
        '<memoryBacking><source type="file"/><access mode="shared"/>'
        '<allocation mode="immediate"/></memoryBacking>'
    )


def test_ondemand_allocation_mode() -> None:
    host = dataclasses.replace(FILE_HOST, allocation_mode="ondemand")
    root = built(request(), host)
    assert one(root, "memoryBacking/allocation").get("mode") == "ondemand"


def test_non_file_backed_host_has_no_memory_backing() -> None:
    root = built(request(), RAM_HOST)
    assert root.find("memoryBacking") is None
    assert root.find(".//source[@type='file']") is None


def test_balloon_is_off_only_for_file_backed_memory() -> None:
    assert one(built(request(), FILE_HOST), "devices/memballoon").get("model") == "none"
    assert one(built(request(), RAM_HOST), "devices/memballoon").get("model") == "virtio"


# --- resource partition -----------------------------------------------------------------------


def test_partition_puts_the_guest_in_it() -> None:
    host = dataclasses.replace(FILE_HOST, partition="/machine/filemem")
    assert one_xml(built(request(), host), "resource") == canon(
        "<resource><partition>/machine/filemem</partition></resource>"
    )
    assert one_xml(
        built(request(), dataclasses.replace(RAM_HOST, partition="/machine/b")), "resource"
    ) == canon("<resource><partition>/machine/b</partition></resource>")


def test_no_partition_leaves_libvirt_default() -> None:
    assert built(request(), FILE_HOST).find("resource") is None


def test_resource_comes_before_os_as_in_libvirt_dumpxml() -> None:
    host = dataclasses.replace(FILE_HOST, partition="/machine/filemem")
    tags = [e.tag for e in built(request(), host)]
    assert tags.index("vcpu") < tags.index("resource") < tags.index("os")


# --- huge pages -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["small", "large", "any", "2048", "2MB", "1GB", "bogus"])
def test_huge_pages_are_refused_on_file_backed_host(value: str) -> None:
    with pytest.raises(InvalidGuestConfig) as info:
        build_domain(request(extra_specs={"hw:mem_page_size": value}), FILE_HOST)
    message = str(info.value)
    assert "hw:mem_page_size" in message
    assert "[libvirt] file_backed_memory" in message
    assert repr(value) in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("large", "<memoryBacking><hugepages/></memoryBacking>"),
        ("any", "<memoryBacking><hugepages/></memoryBacking>"),
        ("2048", '<hugepages><page size="2048" unit="KiB"/></hugepages>'),
        ("2MB", '<hugepages><page size="2048" unit="KiB"/></hugepages>'),
        ("2MiB", '<hugepages><page size="2048" unit="KiB"/></hugepages>'),
        ("2048KB", '<hugepages><page size="2048" unit="KiB"/></hugepages>'),
        ("1GB", '<hugepages><page size="1048576" unit="KiB"/></hugepages>'),
        ("1048576", '<hugepages><page size="1048576" unit="KiB"/></hugepages>'),
    ],
)
def test_huge_pages_on_normal_host(value: str, expected: str) -> None:
    got = memory_backing_xml(request(extra_specs={"hw:mem_page_size": value}), RAM_HOST)
    if expected.startswith("<memoryBacking>"):
        assert got == canon(expected)
    else:
        assert got == canon(f"<memoryBacking>{expected}</memoryBacking>")


def test_small_pages_on_normal_host_need_no_memory_backing() -> None:
    assert memory_backing_xml(request(extra_specs={"hw:mem_page_size": "small"}), RAM_HOST) is None


@pytest.mark.parametrize("value", ["", "huge", "0", "2XB", "1.5GB", "-2048", "1000B"])
def test_invalid_page_size_is_refused_naming_the_extra_spec(value: str) -> None:
    with pytest.raises(InvalidGuestConfig, match="hw:mem_page_size") as info:
        build_domain(request(extra_specs={"hw:mem_page_size": value}), RAM_HOST)
    assert "invalid" in str(info.value)


# --- boot source and console ------------------------------------------------------------------


def test_kernel_boot_golden_file() -> None:
    expected = (FIXTURES / "built_kernel_file_backed.xml").read_text()
    assert canon(build_domain(request(), FILE_HOST).to_xml()) == canon(expected)


def test_domain_basics() -> None:
    domain = build_domain(request(), RAM_HOST)
    assert (domain.type, domain.name, domain.uuid) == ("kvm", "vm1", UUID)
    assert (domain.memory, domain.memory_unit, domain.vcpu) == (262144, "KiB", 1)
    assert domain.os is not None
    assert (domain.os.type, domain.os.arch, domain.os.machine) == ("hvm", "x86_64", None)
    assert domain.metadata is not None
    assert (domain.metadata.name, domain.metadata.flavor_name) == ("vm1", "tiny")
    assert (domain.metadata.memory_mb, domain.metadata.vcpus) == (256, 1)


@pytest.mark.parametrize(
    ("cmdline", "expected"),
    [
        ("", "console=ttyS0"),
        ("quiet", "quiet console=ttyS0"),
        ("console=hvc0 quiet", "console=hvc0 quiet"),
        ("init=\"/bin/sh -c 'a && b'\"", "init=\"/bin/sh -c 'a && b'\" console=ttyS0"),
    ],
)
def test_cmdline_gets_a_serial_console(cmdline: str, expected: str) -> None:
    image = dataclasses.replace(KERNEL, cmdline=cmdline)
    assert built(request(image), FILE_HOST).findtext("os/cmdline") == expected


def test_kernel_image_without_kernel_is_refused() -> None:
    with pytest.raises(InvalidGuestConfig, match="kernel"):
        build_domain(request(Image(kind="kernel")), FILE_HOST)


def test_disk_image_boots_from_the_overlay() -> None:
    overlay = Path("/var/lib/filemem/instances/vm1/disk.qcow2")
    root = built(request(DISK, overlay=overlay), FILE_HOST)
    assert len(root.findall("devices/disk")) == 1
    assert one_xml(root, "devices/disk") == canon(
        '<disk type="file" device="disk">'
        '<driver name="qemu" type="qcow2" discard="unmap"/>'
        f'<source file="{overlay}"/><target dev="vda" bus="virtio"/></disk>'
    )
    assert [b.get("dev") for b in root.findall("os/boot")] == ["hd"]
    assert root.find("os/kernel") is None


def test_disk_image_without_overlay_is_refused() -> None:
    with pytest.raises(InvalidGuestConfig, match="overlay"):
        build_domain(request(DISK), FILE_HOST)


def test_serial_and_console_share_the_log_file() -> None:
    root = built(request(), FILE_HOST)
    assert one_xml(root, "devices/serial") == canon(
        f'<serial type="file"><source path="{LOG}"/><target port="0"/></serial>'
    )
    assert one_xml(root, "devices/console") == canon(
        f'<console type="file"><source path="{LOG}"/><target type="serial" port="0"/></console>'
    )


def test_lifecycle_features_and_clock() -> None:
    root = built(request(), RAM_HOST)
    assert [root.findtext(t) for t in ("on_poweroff", "on_reboot", "on_crash")] == [
        "destroy",
        "restart",
        "destroy",
    ]
    assert [f.tag for f in one(root, "features")] == ["acpi", "apic"]
    assert one(root, "clock").get("offset") == "utc"


def test_built_domain_round_trips_through_the_model() -> None:
    domain = build_domain(request(DISK, overlay=Path("/o.qcow2")), FILE_HOST)
    assert Domain.from_xml(domain.to_xml()) == domain


def test_zero_sized_flavor_is_refused() -> None:
    req = request()
    req = dataclasses.replace(req, flavor=dataclasses.replace(req.flavor, vcpus=0))
    with pytest.raises(InvalidGuestConfig, match="vCPUs"):
        build_domain(req, FILE_HOST)


# --- reading parsed domains ------------------------------------------------------------------


def test_is_file_backed_reads_what_build_domain_wrote() -> None:
    assert is_file_backed(Domain.from_xml(build_domain(request(), FILE_HOST).to_xml()))
    assert not is_file_backed(Domain.from_xml(build_domain(request(), RAM_HOST).to_xml()))
    hugepages = request(extra_specs={"hw:mem_page_size": "large"})
    assert not is_file_backed(build_domain(hugepages, RAM_HOST))


@pytest.mark.parametrize(
    ("memory", "unit", "expected"),
    [
        (262144, "KiB", 256),
        (262144, None, 256),
        (256, "MiB", 256),
        (256, "M", 256),
        (2, "GiB", 2048),
        (268435456, "b", 256),
        (268435456, "bytes", 256),
        (1000, "MB", 953),
        (None, None, 0),
    ],
)
def test_memory_mb(memory: int | None, unit: str | None, expected: int) -> None:
    assert memory_mb(Domain(memory=memory, memory_unit=unit)) == expected


def test_memory_mb_refuses_unknown_unit() -> None:
    with pytest.raises(InvalidGuestConfig, match="furlongs"):
        memory_mb(Domain(memory=1, memory_unit="furlongs"))


# --- versions ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("libvirt", "qemu", "expected"),
    [
        ((4, 3, 0), (2, 10, 0), False),
        ((4, 3, 9), (9, 0, 0), False),
        ((4, 4, 0), (2, 9, 1), False),
        ((4, 4, 0), (2, 10, 0), True),
        ((9, 0, 0), (7, 2, 0), True),
        ((10, 0, 0), (2, 10, 1), True),
    ],
)
def test_discard_gating(
    libvirt: tuple[int, int, int], qemu: tuple[int, int, int], expected: bool
) -> None:
    """Versions decide HostFacts.discard_supported, which decides <discard/> in the XML."""
    host = dataclasses.replace(FILE_HOST, discard_supported=discard_supported(libvirt, qemu))
    backing = build_domain(request(), host).memory_backing
    assert backing is not None
    assert backing.discard is expected


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (9_000_000, (9, 0, 0)),
        (4_004_000, (4, 4, 0)),
        (2_010_001, (2, 10, 1)),
        (7_002_022, (7, 2, 22)),
    ],
)
def test_parse_version(number: int, expected: tuple[int, int, int]) -> None:
    assert parse_version(number) == expected


def test_parse_version_refuses_negative() -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_version(-1)


def test_smbios_says_openstack_nova_as_cloud_init_expects() -> None:
    root = built(request(), FILE_HOST)
    entries = {e.get("name"): e.text for e in root.findall("sysinfo[@type='smbios']/system/entry")}
    assert entries == {
        "manufacturer": "OpenStack Foundation",
        "product": "OpenStack Nova",
        "serial": UUID,
        "uuid": UUID,
        "family": "Virtual Machine",
    }
    assert one(root, "os/smbios").get("mode") == "sysinfo"
