"""Capacity policy for file-backed memory: pure arithmetic on store facts, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from filemem.common.findings import Finding, error, ok, warning
from filemem.common.guests import MemoryFileUsage
from filemem.exceptions import InsufficientBackingStore

if TYPE_CHECKING:
    from filemem.backing.store import StoreFacts

from filemem.common.resources import MIB

CAPACITY_OPTION = "[libvirt] file_backed_memory"
HEADROOM_OPTION = "[libvirt] backing_store_headroom_mb"
RESERVED_OPTION = "[DEFAULT] reserved_host_memory_mb"


# What bounds each RAM-backed filesystem, in /proc/meminfo's words; ramfs pages never swap.
RAM_FILESYSTEMS = {"tmpfs": "MemTotal + SwapTotal", "ramfs": "MemTotal"}


def format_mib(n_bytes: int) -> str:
    """Bytes as MiB for operators: exact when whole, else truncated to 1/100 MiB (never rounded
    up, so a figure of room is never overstated)."""
    sign = "-" if n_bytes < 0 else ""
    n_bytes = abs(n_bytes)
    if n_bytes % MIB == 0:
        return f"{sign}{n_bytes // MIB} MiB"
    if n_bytes < MIB:
        return f"{sign}{n_bytes} bytes"
    hundredths = n_bytes * 100 // MIB
    return f"{sign}{hundredths // 100}.{hundredths % 100:02d} MiB"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _require_non_negative(**values: int) -> None:
    for name, value in values.items():
        if value < 0:
            raise ValueError(f"{name} must not be negative, got {value}")


# --------------------------------------------------------------------------------------------
# RAM-backed stores


@dataclass(frozen=True)
class HostRam:
    """The /proc/meminfo figures that bound a RAM-backed store, in bytes."""

    mem_total_bytes: int
    mem_available_bytes: int
    swap_total_bytes: int
    swap_free_bytes: int


@dataclass(frozen=True)
class StoreRoom:
    """What a store can hold at most (size) and can still take (free), in bytes.

    `ram_limit_bytes` is set for a RAM-backed store: the most RAM (and swap) can hold, whatever
    the filesystem's own size says.
    """

    size_bytes: int
    free_bytes: int
    ram_limit_bytes: int | None = None


def ram_limit_of(fs_type: str, ram: HostRam) -> int | None:
    """The most a RAM-backed filesystem can hold on this host; None for any other filesystem."""
    if fs_type == "tmpfs":
        return ram.mem_total_bytes + ram.swap_total_bytes
    if fs_type == "ramfs":
        return ram.mem_total_bytes
    return None


def usable_size_bytes(fs_size_bytes: int, ram_limit_bytes: int | None) -> int:
    """The filesystem's size, cut down to what RAM can hold when it is RAM-backed."""
    if ram_limit_bytes is None:
        return fs_size_bytes
    # ramfs, and tmpfs mounted with size=0, have no limit of their own and report a size of 0.
    return ram_limit_bytes if fs_size_bytes == 0 else min(fs_size_bytes, ram_limit_bytes)


def store_room(
    fs_type: str, fs_size_bytes: int, fs_free_bytes: int, ram: HostRam | None
) -> StoreRoom:
    """The room of a store from statvfs figures, bounded by RAM when the store lives in RAM.

    A tmpfs accepts any size=, but what it holds beyond RAM + swap is a promise the host cannot
    keep; so is free room beyond what that limit leaves after what the store already holds.
    """
    _require_non_negative(fs_size_bytes=fs_size_bytes, fs_free_bytes=fs_free_bytes)
    limit = None if ram is None else ram_limit_of(fs_type, ram)
    if ram is None or limit is None:
        return StoreRoom(fs_size_bytes, fs_free_bytes)
    size = usable_size_bytes(fs_size_bytes, limit)
    if fs_size_bytes == 0:
        # No size means no free figure either: what RAM (and swap, for tmpfs) has left is it.
        left = ram.mem_available_bytes + (ram.swap_free_bytes if fs_type == "tmpfs" else 0)
        return StoreRoom(size, min(left, size), limit)
    used = max(0, fs_size_bytes - fs_free_bytes)
    return StoreRoom(size, max(0, min(fs_free_bytes, size - used)), limit)


# --------------------------------------------------------------------------------------------
# room for guests


def promised_bytes(running: Sequence[tuple[int, int]]) -> int:
    """Bytes running guests may still allocate: (nominal, allocated) files not yet filled in."""
    return sum(max(0, nominal - allocated) for nominal, allocated in running)


def room_for_new_guest(
    free_bytes: int, running: Sequence[tuple[int, int]], headroom_bytes: int
) -> int:
    """Bytes a new guest's memory file may take without eating room promised to running guests.

    On an ondemand store a running guest's untouched memory is not allocated yet, but the guest
    may touch it any time; giving that room away would let the store fill up under it.
    """
    _require_non_negative(free_bytes=free_bytes, headroom_bytes=headroom_bytes)
    return max(0, free_bytes - promised_bytes(running) - headroom_bytes)


def check_guest_fits(
    guest_memory_mb: int,
    free_bytes: int,
    running: Sequence[tuple[int, int]],
    headroom_bytes: int,
    store_path: Path,
    device: str | None = None,
) -> None:
    """Raise InsufficientBackingStore unless a guest of `guest_memory_mb` fits right now."""
    _require_non_negative(guest_memory_mb=guest_memory_mb)
    room = room_for_new_guest(free_bytes, running, headroom_bytes)
    needed = guest_memory_mb * MIB
    if needed <= room:
        return
    promised = promised_bytes(running)
    promising = sum(1 for nominal, allocated in running if nominal > allocated)
    promise_text = (
        f"{format_mib(promised)} promised to {_plural(promising, 'running guest')}"
        if promising
        else "nothing promised to running guests"
    )
    where = f"{store_path} ({device})" if device else str(store_path)
    raise InsufficientBackingStore(
        f"guest needs {format_mib(needed)} of memory file but the backing store {where} "
        f"can hold only {format_mib(room)} now: {format_mib(free_bytes)} free, {promise_text}, "
        f"{format_mib(headroom_bytes)} headroom ({HEADROOM_OPTION})"
    )


def effective_capacity_mb(
    configured_mb: int,
    fs_size_bytes: int,
    free_bytes: int,
    allocated_by_guests_bytes: int,
    headroom_bytes: int = 0,
    ram_limit_bytes: int | None = None,
) -> tuple[int, str | None]:
    """The MEMORY_MB total we may honestly report, and why it is below `configured_mb` if so.

    Room the store can give guests is what is free plus what our guests' files already hold
    (it comes back when they stop), less the headroom the guard keeps. Figures are floored to
    whole MiB so the report never exceeds the store. `ram_limit_bytes` (StoreFacts has it) bounds
    a RAM-backed store's size and names RAM as the reason; StoreFacts.size_bytes is already
    bounded by it, so callers without it get the same capacity.
    """
    _require_non_negative(
        configured_mb=configured_mb,
        fs_size_bytes=fs_size_bytes,
        free_bytes=free_bytes,
        allocated_by_guests_bytes=allocated_by_guests_bytes,
        headroom_bytes=headroom_bytes,
    )
    size = usable_size_bytes(fs_size_bytes, ram_limit_bytes)
    fs_mb = size // MIB
    room = max(0, free_bytes + allocated_by_guests_bytes - headroom_bytes)
    room_mb = room // MIB
    capacity = min(configured_mb, fs_mb, room_mb)
    if capacity == configured_mb:
        return capacity, None
    wanted = f"{CAPACITY_OPTION} = {configured_mb} MiB"
    if capacity == fs_mb and size == ram_limit_bytes:
        return capacity, (
            f"the backing store is RAM-backed and can hold no more than RAM allows, "
            f"{format_mib(size)}, less than {wanted}"
        )
    if capacity == fs_mb:
        return capacity, (
            f"the backing filesystem is only {format_mib(fs_size_bytes)} in size, "
            f"less than {wanted}"
        )
    headroom_text = (
        f" - {format_mib(headroom_bytes)} headroom ({HEADROOM_OPTION})" if headroom_bytes else ""
    )
    return capacity, (
        f"the backing store can hold only {format_mib(room)} of guest memory "
        f"({format_mib(free_bytes)} free + {format_mib(allocated_by_guests_bytes)} held by "
        f"guests' memory files{headroom_text}), less than {wanted}"
    )


# --------------------------------------------------------------------------------------------
# findings for startup checks and `filemem` reports


def _describe_location(store: StoreFacts) -> Finding:
    if store.is_mount_point:
        sharing = "it is a mount point of its own"
    else:
        sharing = (
            f"it shares that filesystem with everything else under {store.mount_point}, "
            "whose writers take from the same free room"
        )
    kind = {True: "rotational", False: "non-rotational", None: "not a block device"}
    dax = ", DAX" if store.dax else ""
    return ok(
        "store.location",
        f"memory backing dir {store.path} is on {store.device} ({store.fs_type}, "
        f"{kind[store.rotational]}{dax}) mounted at {store.mount_point}; {sharing}",
    )


def _describe_space(store: StoreFacts, guest_files: Sequence[MemoryFileUsage]) -> Finding:
    nominal = sum(f.nominal_bytes for f in guest_files)
    allocated = sum(f.allocated_bytes for f in guest_files)
    fs_size = store.size_bytes if store.fs_size_bytes is None else store.fs_size_bytes
    ram = ""
    if store.ram_limit_bytes is not None:
        limit = format_mib(store.ram_limit_bytes)
        ram = (
            f" (RAM-backed: it holds at most {format_mib(store.size_bytes)}, "
            f"{RAM_FILESYSTEMS.get(store.fs_type, 'RAM')} being {limit})"
        )
    return ok(
        "store.space",
        f"filesystem size {format_mib(fs_size)}{ram}, free {format_mib(store.free_bytes)}; "
        f"{_plural(len(guest_files), 'guest memory file')}: {format_mib(nominal)} nominal, "
        f"{format_mib(allocated)} allocated",
    )


def _ram_bound(store: StoreFacts) -> bool:
    """Whether RAM, not the filesystem's own size, is what limits the store."""
    return store.ram_limit_bytes is not None and store.size_bytes >= store.ram_limit_bytes


def _too_small(store: StoreFacts, configured: str, where: str) -> Finding:
    if not _ram_bound(store):
        return error(
            "store.too_small",
            f"{configured} but the filesystem holding {where} is only "
            f"{format_mib(store.size_bytes)} in size",
            CAPACITY_OPTION,
        )
    fs_size = store.fs_size_bytes or 0
    promise = (
        f"; its size of {format_mib(fs_size)} is a promise the host cannot keep"
        if fs_size > store.size_bytes
        else ""
    )
    return error(
        "store.exceeds_ram",
        f"{configured} but {where} is RAM-backed and RAM-backed stores cannot exceed RAM: it "
        f"holds at most {RAM_FILESYSTEMS.get(store.fs_type, 'RAM')} = "
        f"{format_mib(store.size_bytes)}{promise}",
        CAPACITY_OPTION,
    )


def _capacity_findings(
    file_backed_memory_mb: int, reserved_mb: int, store: StoreFacts, allocated: int
) -> list[Finding]:
    if file_backed_memory_mb <= 0:
        return [
            ok(
                "store.unused",
                f"{CAPACITY_OPTION} is 0: file-backed memory is off",
                CAPACITY_OPTION,
            )
        ]
    # Placement hands guests total - reserved, so that is what the store must hold.
    guest_mb = max(0, file_backed_memory_mb - max(0, reserved_mb))
    needed = guest_mb * MIB
    configured = f"{CAPACITY_OPTION} is {file_backed_memory_mb} MiB"
    if reserved_mb > 0:
        configured += f" ({guest_mb} MiB for guests after {RESERVED_OPTION} = {reserved_mb})"
    where = f"{store.path} ({store.device}, {store.fs_type})"
    if needed > store.size_bytes:
        return [_too_small(store, configured, where)]
    available = store.free_bytes + allocated
    if needed > available:
        return [
            warning(
                "store.short_free",
                f"free room is short by {format_mib(needed - available)}: {configured} but "
                f"{where} has {format_mib(store.free_bytes)} free + {format_mib(allocated)} "
                f"held by guests' memory files = {format_mib(available)}; "
                "guests will be refused once it is used up",
                CAPACITY_OPTION,
            )
        ]
    return [
        ok(
            "store.capacity_fits",
            f"{configured}; {where} can hold it ({format_mib(available)} free or held by guests)",
            CAPACITY_OPTION,
        )
    ]


def _sharing_findings(store: StoreFacts) -> list[Finding]:
    """Other writers on the store's filesystem take from the room promised to guests."""
    findings: list[Finding] = []
    if store.on_root_fs:
        findings.append(
            warning(
                "store.on_root_fs",
                f"{store.path} is on the root filesystem ({store.device}): the OS, logs and "
                "packages take from the same free room, and guests' memory files filling it "
                "break the host; give the store a filesystem of its own",
            )
        )
    if store.other_mounts:
        elsewhere = ", ".join(str(mount) for mount in store.other_mounts)
        findings.append(
            warning(
                "store.shared_device",
                f"{store.device} holding {store.path} is also mounted at {elsewhere} (other parts "
                "of the same filesystem), whose writers take from the same free room",
            )
        )
    return findings


def store_findings(
    file_backed_memory_mb: int,
    reserved_host_memory_mb: int,
    store: StoreFacts,
    guest_files: Sequence[MemoryFileUsage],
) -> list[Finding]:
    """Everything worth telling an operator about the store: descriptions first, then problems."""
    findings = [_describe_location(store), _describe_space(store, guest_files)]
    if not store.exists:
        findings.append(
            ok(
                "store.will_be_created",
                f"{store.path} does not exist yet; libvirtd creates it (owned by "
                f"{store.qemu_user}) when it starts; the facts above are those of its nearest "
                "existing parent",
            )
        )
    if not store.qemu_can_write:
        findings.append(
            error(
                "store.not_writable",
                f"QEMU runs as {store.qemu_user!r} (qemu.conf user), which could not create its "
                f"memory files under {store.path}: {store.write_problem or 'permission denied'}",
            )
        )
    if store.rotational:
        findings.append(
            warning(
                "store.rotational",
                f"{store.device} holding {store.path} is a rotational disk: guest memory on it is "
                "very slow; use NVMe, SSD, PMEM or a RAM disk",
            )
        )
    findings.extend(_sharing_findings(store))
    allocated = sum(f.allocated_bytes for f in guest_files)
    findings.extend(
        _capacity_findings(file_backed_memory_mb, reserved_host_memory_mb, store, allocated)
    )
    return findings
