"""libvirt domain XML elements: the subset filemem writes and reads back (the rest is dropped)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from filemem.virt.xml.base import XmlElement, attr, child, children, flag, text, xml_element

__all__ = [
    "FILEMEM_NS",
    "Boot",
    "CharDevice",
    "Clock",
    "Console",
    "Cpu",
    "Devices",
    "Disk",
    "Domain",
    "Features",
    "HugePage",
    "HugePages",
    "InstanceMetadata",
    "Interface",
    "MemBalloon",
    "MemoryBacking",
    "Os",
    "Resource",
    "Serial",
    "Sysinfo",
    "SysinfoEntry",
]

FILEMEM_NS = "https://filemem.dev/xmlns/instance/1.0"
# ElementTree keeps prefixes in a process-wide map; without this the output would say "ns0:".
ET.register_namespace("filemem", FILEMEM_NS)

_ON_OFF = ("on", "off")


@xml_element
class InstanceMetadata(XmlElement):
    """``<filemem:instance>`` in ``<metadata>``: the instance and flavor a domain was built for."""

    TAG = f"{{{FILEMEM_NS}}}instance"
    NAMESPACE = FILEMEM_NS

    name: str | None = text("name")
    # "api" (the agent reconciles it) or "cli" (low-level `filemem guest`, left alone by agents)
    owner: str | None = text("owner")
    creation_time: str | None = text("creationTime")
    flavor_name: str | None = attr("name", path="flavor")
    memory_mb: int | None = text("flavor/memory")
    vcpus: int | None = text("flavor/vcpus")


@xml_element
class HugePage(XmlElement):
    TAG = "page"

    size: int | None = attr("size")
    unit: str | None = attr("unit")
    nodeset: str | None = attr("nodeset")


@xml_element
class HugePages(XmlElement):
    """``<hugepages/>`` alone means the host's default huge page size."""

    TAG = "hugepages"

    pages: list[HugePage] = children(HugePage)


@xml_element
class MemoryBacking(XmlElement):
    TAG = "memoryBacking"

    hugepages: HugePages | None = child(HugePages)
    nosharepages: bool = flag("nosharepages")
    locked: bool = flag("locked")
    source_type: str | None = attr("type", path="source")
    access_mode: str | None = attr("mode", path="access")
    allocation_mode: str | None = attr("mode", path="allocation")
    discard: bool = flag("discard")


@xml_element
class Resource(XmlElement):
    """``<resource>``: the resource partition (a cgroup such as /machine/filemem) QEMU runs in."""

    TAG = "resource"

    partition: str | None = text("partition")


@xml_element
class Boot(XmlElement):
    TAG = "boot"

    dev: str | None = attr("dev")


@xml_element
class Os(XmlElement):
    TAG = "os"

    type: str | None = text("type")
    arch: str | None = attr("arch", path="type")
    machine: str | None = attr("machine", path="type")
    kernel: str | None = text("kernel")
    initrd: str | None = text("initrd")
    cmdline: str | None = text("cmdline")
    boot: list[Boot] = children(Boot)
    # "sysinfo": the guest's SMBIOS tables come from the domain's <sysinfo>.
    smbios_mode: str | None = attr("mode", path="smbios")


@xml_element
class SysinfoEntry(XmlElement):
    TAG = "entry"

    name: str | None = attr("name")
    value: str | None = text("")


@xml_element
class Sysinfo(XmlElement):
    """``<sysinfo type="smbios">``: the system table a guest reads (dmidecode, cloud-init)."""

    TAG = "sysinfo"

    type: str | None = attr("type")
    system: list[SysinfoEntry] = children(SysinfoEntry, path="system")


@xml_element
class Features(XmlElement):
    TAG = "features"

    acpi: bool = flag("acpi")
    apic: bool = flag("apic")


@xml_element
class Cpu(XmlElement):
    TAG = "cpu"

    mode: str | None = attr("mode")


@xml_element
class Clock(XmlElement):
    TAG = "clock"

    offset: str | None = attr("offset")


@xml_element
class Disk(XmlElement):
    TAG = "disk"

    type: str | None = attr("type")
    device: str | None = attr("device")
    driver_name: str | None = attr("name", path="driver")
    driver_type: str | None = attr("type", path="driver")
    driver_cache: str | None = attr("cache", path="driver")
    driver_discard: str | None = attr("discard", path="driver")
    source_file: str | None = attr("file", path="source")
    target_dev: str | None = attr("dev", path="target")
    target_bus: str | None = attr("bus", path="target")
    readonly: bool = flag("readonly")


@xml_element
class Interface(XmlElement):
    """``<interface type="bridge">``: a virtio NIC on a Linux bridge; libvirt makes the tap
    (named ``target_dev``) and removes it with the domain."""

    TAG = "interface"

    type: str | None = attr("type")
    mac_address: str | None = attr("address", path="mac")
    source_bridge: str | None = attr("bridge", path="source")
    source_network: str | None = attr("network", path="source")  # type "network": read only
    model_type: str | None = attr("type", path="model")
    mtu: int | None = attr("size", path="mtu")
    target_dev: str | None = attr("dev", path="target")


@xml_element
class CharDevice(XmlElement):
    """Fields shared by ``<serial>`` and ``<console>``: type file (source path) or pty (+ log)."""

    type: str | None = attr("type")
    source_path: str | None = attr("path", path="source")
    source_append: bool | None = attr("append", path="source", truth=_ON_OFF)
    log_file: str | None = attr("file", path="log")
    log_append: bool | None = attr("append", path="log", truth=_ON_OFF)
    target_type: str | None = attr("type", path="target")
    target_port: int | None = attr("port", path="target")


@xml_element
class Serial(CharDevice):
    TAG = "serial"


@xml_element
class Console(CharDevice):
    TAG = "console"


@xml_element
class MemBalloon(XmlElement):
    """Written even for model "none": an absent ``<memballoon>`` makes libvirt add a virtio one."""

    TAG = "memballoon"

    model: str | None = attr("model")


@xml_element
class Devices(XmlElement):
    TAG = "devices"

    emulator: str | None = text("emulator")
    disks: list[Disk] = children(Disk)
    interfaces: list[Interface] = children(Interface)
    serials: list[Serial] = children(Serial)
    consoles: list[Console] = children(Console)
    memballoon: MemBalloon | None = child(MemBalloon)


@xml_element
class Domain(XmlElement):
    """``<domain>``; memory values are in ``memory_unit`` (libvirt's default and dumpxml: KiB)."""

    TAG = "domain"

    type: str | None = attr("type")
    id: int | None = attr("id")
    name: str | None = text("name")
    uuid: str | None = text("uuid")
    title: str | None = text("title")
    metadata: InstanceMetadata | None = child(InstanceMetadata, path="metadata")
    memory: int | None = text("memory")
    memory_unit: str | None = attr("unit", path="memory")
    current_memory: int | None = text("currentMemory")
    current_memory_unit: str | None = attr("unit", path="currentMemory")
    memory_backing: MemoryBacking | None = child(MemoryBacking)
    vcpu: int | None = text("vcpu")
    resource: Resource | None = child(Resource)
    sysinfo: Sysinfo | None = child(Sysinfo)
    os: Os | None = child(Os)
    features: Features | None = child(Features)
    cpu: Cpu | None = child(Cpu)
    clock: Clock | None = child(Clock)
    on_poweroff: str | None = text("on_poweroff")
    on_reboot: str | None = text("on_reboot")
    on_crash: str | None = text("on_crash")
    devices: Devices | None = child(Devices)
