"""Plain data passed between the policy (guest config, capacity) and the hypervisor driver."""

from __future__ import annotations

import enum
import re
import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from filemem.exceptions import InvalidInput

# libvirt accepts far more, but these names become directory and file names: keep them boring.
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def validate_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise InvalidInput(
            f"guest name {name!r} is invalid: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return name


def validate_uuid(value: str) -> str:
    try:
        return str(uuidlib.UUID(value))
    except ValueError:
        raise InvalidInput(f"{value!r} is not a UUID") from None


class PowerState(enum.IntEnum):
    """Nova's power_state values, so operators read the same numbers."""

    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7


@dataclass(frozen=True)
class Flavor:
    name: str
    vcpus: int
    memory_mb: int
    disk_gb: int = 0
    extra_specs: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Image:
    """Either a kernel (+initrd, cmdline) boot, or a disk image booted through a CoW overlay."""

    kind: Literal["kernel", "disk"]
    kernel: Path | None = None
    initrd: Path | None = None
    cmdline: str = ""
    disk: Path | None = None
    disk_format: Literal["qcow2", "raw"] = "qcow2"
    name: str = ""
    # The image property hw_mem_page_size (None when unset); filemem.common.page_size combines
    # it with the flavor's hw:mem_page_size.
    mem_page_size: str | None = None
    # An image uploaded to the API ("upload") has no disk until the agent's image cache
    # (filemem.compute.image_cache) downloads it by id and checks it against these.
    source: Literal["path", "upload"] = "path"
    image_id: str | None = None
    size: int | None = None
    os_hash_algo: str | None = None
    os_hash_value: str | None = None


@dataclass(frozen=True)
class Nic:
    """A guest network interface as guest config places it: a virtio NIC with this MAC on
    this Linux bridge (the built-in network driver's), named `target` on the host."""

    mac_address: str
    bridge: str
    target: str | None = None
    mtu: int | None = None


@dataclass(frozen=True)
class GuestRequest:
    name: str
    uuid: str
    flavor: Flavor
    image: Image
    console_log: Path
    overlay: Path | None = None  # CoW overlay of image.disk, created by the driver
    owner: str = "api"  # guests an agent reconciles; see InstanceMetadata.owner
    nics: tuple[Nic, ...] = ()
    # An ISO 9660 image labelled config-2 (nova's config drive), attached as a read-only CD-ROM.
    config_drive: Path | None = None


@dataclass(frozen=True)
class HostFacts:
    """What guest config needs to know about the host (all read by the driver, none guessed)."""

    virt_type: Literal["kvm", "qemu"]
    file_backed_memory_mb: int
    discard_supported: bool
    allocation_mode: Literal["immediate", "ondemand"] = "immediate"
    arch: str = "x86_64"
    # libvirt resource partition the guest's QEMU runs in ("/machine/filemem"); None: libvirt's
    # default, /machine
    partition: str | None = None

    @property
    def file_backed(self) -> bool:
        return self.file_backed_memory_mb > 0


@dataclass(frozen=True)
class MemoryFileUsage:
    """A guest's memory file: nominal size (st_size) and bytes really allocated (st_blocks)."""

    path: Path
    nominal_bytes: int
    allocated_bytes: int


@dataclass(frozen=True)
class GuestInfo:
    uuid: str
    name: str
    domain_id: int | None
    power_state: PowerState
    memory_mb: int
    vcpus: int
    file_backed: bool
    memory_file: MemoryFileUsage | None = None
    owner: str | None = None
    # Shut off with a libvirt managed save image (a suspended guest): starting it restores the
    # saved memory and devices instead of booting.
    managed_save: bool = False
