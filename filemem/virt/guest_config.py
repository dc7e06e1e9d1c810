"""Guest configuration policy: flavor + image + host facts -> libvirt Domain, with no I/O at all."""

from __future__ import annotations

import re

from filemem.common.guests import Flavor, GuestRequest, HostFacts, Image, Nic
from filemem.common.page_size import (
    PageSizeForbidden,
    avoids_file_backed_memory,
    requested_page_size,
)
from filemem.common.resources import IMAGE_MEM_PAGE_SIZE, MEM_PAGE_SIZE
from filemem.exceptions import InvalidGuestConfig
from filemem.virt.xml.domain import (
    Boot,
    Clock,
    Console,
    Devices,
    Disk,
    Domain,
    Features,
    HugePage,
    HugePages,
    InstanceMetadata,
    Interface,
    MemBalloon,
    MemoryBacking,
    Os,
    Resource,
    Serial,
    Sysinfo,
    SysinfoEntry,
)

__all__ = [
    "build_domain",
    "file_memory_backing",
    "is_file_backed",
    "memory_mb",
]


SERIAL_CONSOLE_ARG = "console=ttyS0"
# nova's SMBIOS system table: cloud-init's ds-identify recognizes an OpenStack guest by the
# product name, and then reads the metadata service or config drive.
SMBIOS_MANUFACTURER = "OpenStack Foundation"
SMBIOS_PRODUCT = "OpenStack Nova"
SMBIOS_FAMILY = "Virtual Machine"

# Nova's accepted spellings: a bare number is KiB; units are binary whatever their spelling.
_PAGE_SIZE_RE = re.compile(r"^(?P<number>[0-9]+)\s*(?P<unit>[KMGT](?:i?B)?|B)?$", re.IGNORECASE)
# libvirt's scaled-integer units (docs: formatdomain "memory"): SI when spelled KB/MB/..., binary
# for K/KiB/M/MiB/...; a missing unit means KiB.
_LIBVIRT_UNIT_BYTES: dict[str, int] = {
    "b": 1,
    "bytes": 1,
    **{f"{p}b": 1000 ** (i + 1) for i, p in enumerate("kmgtpe")},
    **{p: 1024 ** (i + 1) for i, p in enumerate("kmgtpe")},
    **{f"{p}ib": 1024 ** (i + 1) for i, p in enumerate("kmgtpe")},
}
_UNIT_BYTES = {"B": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
# A unicast MAC (the low bit of the first octet clear): a multicast one cannot be a NIC's.
_MAC_RE = re.compile(r"^[0-9a-f][02468ace](:[0-9a-f]{2}){5}$")
# A Linux interface name (IFNAMSIZ - 1 characters, no "/" or whitespace).
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")


def is_file_backed(domain: Domain) -> bool:
    """Whether a (parsed) domain has ``<memoryBacking><source type="file"/>``."""
    return domain.memory_backing is not None and domain.memory_backing.source_type == "file"


def memory_mb(domain: Domain) -> int:
    """A (parsed) domain's ``<memory>`` in MiB, rounded down; 0 when it has none."""
    if domain.memory is None:
        return 0
    unit = (domain.memory_unit or "KiB").lower()
    if unit not in _LIBVIRT_UNIT_BYTES:
        raise InvalidGuestConfig(f"domain memory unit {domain.memory_unit!r} is not a libvirt unit")
    return domain.memory * _LIBVIRT_UNIT_BYTES[unit] // (1024 * 1024)


def build_domain(request: GuestRequest, host: HostFacts) -> Domain:
    """The domain to define for ``request`` on ``host``; InvalidGuestConfig if it can't run here."""
    flavor = request.flavor
    if flavor.vcpus < 1 or flavor.memory_mb < 1:
        raise InvalidGuestConfig(
            f"flavor {flavor.name!r} has {flavor.vcpus} vCPUs and {flavor.memory_mb} MiB of "
            "memory; both must be at least 1"
        )
    return Domain(
        type=host.virt_type,
        name=request.name,
        uuid=request.uuid,
        metadata=InstanceMetadata(
            name=request.name,
            owner=request.owner,
            flavor_name=flavor.name,
            memory_mb=flavor.memory_mb,
            vcpus=flavor.vcpus,
        ),
        memory=flavor.memory_mb * 1024,
        memory_unit="KiB",
        memory_backing=_memory_backing(flavor, request.image, host),
        vcpu=flavor.vcpus,
        resource=None if host.partition is None else Resource(partition=host.partition),
        sysinfo=_sysinfo(request),
        # No machine type: libvirt picks the emulator's default, which it also keeps stable.
        os=_os(request, host),
        features=Features(acpi=True, apic=True),
        clock=Clock(offset="utc"),
        on_poweroff="destroy",
        on_reboot="restart",
        on_crash="destroy",
        devices=_devices(request, host),
    )


def _memory_backing(flavor: Flavor, image: Image, host: HostFacts) -> MemoryBacking | None:
    flavor_value = flavor.extra_specs.get(MEM_PAGE_SIZE)
    if host.file_backed:
        # Any value from either source is refused, "small" included: such a guest is meant for
        # huge-page hosts, and the scheduler keeps it off file-backed hosts for the same reason.
        if avoids_file_backed_memory(flavor_value, image.mem_page_size):
            raise InvalidGuestConfig(
                f"{_page_size_source(flavor, image)}, but this host backs guest memory with "
                f"files ([libvirt] file_backed_memory = {host.file_backed_memory_mb} MiB) and "
                "huge pages cannot be combined with file-backed memory: use a flavor without "
                f"{MEM_PAGE_SIZE} and an image without {IMAGE_MEM_PAGE_SIZE}, or a host with "
                "[libvirt] file_backed_memory = 0"
            )
        return file_memory_backing(host.allocation_mode, host.discard_supported)
    try:
        page_size = requested_page_size(
            flavor_value, image.mem_page_size, flavor_name=flavor.name, image_name=image.name
        )
    except PageSizeForbidden as exc:
        raise InvalidGuestConfig(str(exc)) from None
    if page_size is None:
        return None
    hugepages = _huge_pages(page_size)
    return None if hugepages is None else MemoryBacking(hugepages=hugepages)


def file_memory_backing(allocation_mode: str, discard: bool) -> MemoryBacking:
    """The guide's file-backed memory: <source type="file"/><access mode="shared"/>
    <allocation mode=.../> and <discard/> where libvirt and QEMU support it."""
    return MemoryBacking(
        source_type="file",
        access_mode="shared",
        allocation_mode=allocation_mode,
        discard=discard,
    )


def _page_size_source(flavor: Flavor, image: Image) -> str:
    """E.g. "flavor 'm1' sets hw:mem_page_size='large'" (and/or the image's property)."""
    parts = []
    flavor_value = flavor.extra_specs.get(MEM_PAGE_SIZE)
    if flavor_value is not None:
        parts.append(f"flavor {flavor.name!r} sets {MEM_PAGE_SIZE}={flavor_value!r}")
    if image.mem_page_size is not None:
        parts.append(f"image {image.name!r} sets {IMAGE_MEM_PAGE_SIZE}={image.mem_page_size!r}")
    return " and ".join(parts)


def _huge_pages(page_size: str) -> HugePages | None:
    value = page_size.strip().lower()
    if value == "small":
        return None
    if value in ("large", "any"):
        return HugePages()
    match = _PAGE_SIZE_RE.match(value)
    if match:
        unit = (match["unit"] or "K")[0].upper()
        size_bytes = int(match["number"]) * _UNIT_BYTES[unit]
        if size_bytes > 0 and size_bytes % 1024 == 0:
            return HugePages(pages=[HugePage(size=size_bytes // 1024, unit="KiB")])
    raise InvalidGuestConfig(
        f"page size {page_size!r} ({MEM_PAGE_SIZE} or {IMAGE_MEM_PAGE_SIZE}) is invalid: use "
        "small, large, any, "
        "or a page size such as 2048 (KiB), 2MB or 1GB"
    )


def _sysinfo(request: GuestRequest) -> Sysinfo:
    entries = {
        "manufacturer": SMBIOS_MANUFACTURER,
        "product": SMBIOS_PRODUCT,
        "serial": request.uuid,
        "uuid": request.uuid,
        "family": SMBIOS_FAMILY,
    }
    return Sysinfo(
        type="smbios",
        system=[SysinfoEntry(name=name, value=value) for name, value in entries.items()],
    )


def _os(request: GuestRequest, host: HostFacts) -> Os:
    image = request.image
    os = Os(type="hvm", arch=host.arch, smbios_mode="sysinfo")
    if image.kind == "kernel":
        if image.kernel is None:
            raise InvalidGuestConfig(f"image for {request.name!r} is a kernel boot without kernel")
        os.kernel = str(image.kernel)
        os.initrd = None if image.initrd is None else str(image.initrd)
        os.cmdline = _cmdline(image)
    else:
        os.boot = [Boot(dev="hd")]
    return os


def _cmdline(image: Image) -> str:
    # The console log is the serial port; a guest that chose its own console keeps its choice.
    if any(arg.startswith("console=") for arg in image.cmdline.split()):
        return image.cmdline
    return f"{image.cmdline} {SERIAL_CONSOLE_ARG}".strip()


def _devices(request: GuestRequest, host: HostFacts) -> Devices:
    log = str(request.console_log)
    devices = Devices(
        # Console output goes to a file so it survives the agent and needs no reader; the console
        # names the same source as serial port 0, which libvirt then treats as one device.
        serials=[Serial(type="file", source_path=log, target_port=0)],
        consoles=[Console(type="file", source_path=log, target_type="serial", target_port=0)],
        # A balloon cannot hand back pages of a shared memory file, it would only mislead.
        memballoon=MemBalloon(model="none" if host.file_backed else "virtio"),
    )
    if request.image.kind == "disk":
        devices.disks = [_overlay_disk(request)]
    devices.interfaces = [_interface(request.name, nic) for nic in request.nics]
    return devices


def _interface(name: str, nic: Nic) -> Interface:
    """A virtio NIC on the nic's Linux bridge; its MAC is the port's (the DHCP server knows
    the guest by it), so it is checked here rather than left for libvirt to refuse."""
    mac = nic.mac_address.lower()
    if not _MAC_RE.match(mac):
        raise InvalidGuestConfig(f"guest {name!r}: {nic.mac_address!r} is not a unicast MAC")
    for what, ifname in (("bridge", nic.bridge), ("target", nic.target)):
        if ifname is not None and not _IFNAME_RE.match(ifname):
            raise InvalidGuestConfig(
                f"guest {name!r}: NIC {what} {ifname!r} is not a Linux interface name"
            )
    return Interface(
        type="bridge",
        mac_address=mac,
        source_bridge=nic.bridge,
        model_type="virtio",
        mtu=nic.mtu,
        target_dev=nic.target,
    )


def _overlay_disk(request: GuestRequest) -> Disk:
    if request.overlay is None:
        raise InvalidGuestConfig(
            f"guest {request.name!r} boots from a disk image but has no overlay: the driver must "
            "create the copy-on-write overlay before building the domain"
        )
    return Disk(
        type="file",
        device="disk",
        driver_name="qemu",
        driver_type="qcow2",
        driver_discard="unmap",
        source_file=str(request.overlay),
        target_dev="vda",
        target_bus="virtio",
    )
