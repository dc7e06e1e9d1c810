"""The backing store as it is on this host: qemu.conf, mounts, block devices and memory files."""

from __future__ import annotations

import os
import pwd
import re
import stat
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from filemem.backing.capacity import RAM_FILESYSTEMS, HostRam, StoreRoom, store_room
from filemem.common.guests import MemoryFileUsage

# libvirt's compiled-in defaults for the privileged daemon on Debian.
DEFAULT_MEMORY_BACKING_DIR = Path("/var/lib/libvirt/qemu/ram")
DEFAULT_QEMU_USER = "libvirt-qemu"

MOUNTINFO = Path("/proc/self/mountinfo")
MEMINFO = Path("/proc/meminfo")
SYSFS = Path("/sys")

# virConf string values: "..." or '...', optionally followed by a comment.
_CONF_STRING_RE = re.compile(
    r"""^\s*(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*
        (?:"(?P<dq>[^"]*)"|'(?P<sq>[^']*)')\s*(?:\#.*)?$""",
    re.VERBOSE,
)
# libvirt formats the per-domain directory as "%d-%.20s" (virDomainDefGetShortName).
_DOMAIN_DIR_RE = re.compile(r"^(0|[1-9][0-9]*)-")
_MOUNTINFO_ESCAPE_RE = re.compile(r"\\([0-7]{3})")


# --------------------------------------------------------------------------------------------
# qemu.conf


def _conf_string(qemu_conf_text: str, key: str) -> str | None:
    """The string value of `key`; the first occurrence wins, as in libvirt's virConfGetValue."""
    for line in qemu_conf_text.splitlines():
        match = _CONF_STRING_RE.match(line)
        if match and match.group("key") == key:
            value = match.group("dq")
            return value if value is not None else match.group("sq")
    return None


def read_qemu_conf(path: Path) -> str:
    """The text of qemu.conf; a missing file reads as "" because libvirt then uses its defaults."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""


def effective_memory_backing_dir(qemu_conf_text: str) -> Path:
    """The directory libvirt really uses: it appends "libvirt/qemu" to a configured value."""
    configured = _conf_string(qemu_conf_text, "memory_backing_dir")
    if configured is None:
        return DEFAULT_MEMORY_BACKING_DIR
    # libvirt formats "%s/libvirt/qemu"; libvirtd runs from "/", so relative values start there.
    return Path("/") / f"{configured}/libvirt/qemu"


def qemu_user(qemu_conf_text: str) -> str:
    """The user QEMU runs as: a name, or "+<uid>" for a numeric id."""
    return _conf_string(qemu_conf_text, "user") or DEFAULT_QEMU_USER


# --------------------------------------------------------------------------------------------
# mounts and block devices


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo."""

    mount_point: Path
    major: int
    minor: int
    fs_type: str
    source: str
    options: frozenset[str]  # per-mount and per-superblock options together
    root: str = "/"  # the directory of the filesystem shown at mount_point (bind mounts)


def _unescape(field: str) -> str:
    return _MOUNTINFO_ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo(text: str) -> list[MountEntry]:
    """Entries in file order (later entries cover earlier ones at the same mount point)."""
    entries: list[MountEntry] = []
    for line in text.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-", 6)
            major, minor = (int(part) for part in fields[2].split(":"))
        except ValueError:
            continue
        if len(fields) < sep + 3:
            continue
        super_options = fields[sep + 3].split(",") if len(fields) > sep + 3 else []
        entries.append(
            MountEntry(
                mount_point=Path(_unescape(fields[4])),
                major=major,
                minor=minor,
                fs_type=fields[sep + 1],
                source=_unescape(fields[sep + 2]),
                options=frozenset(fields[5].split(",") + super_options),
                root=_unescape(fields[3]),
            )
        )
    return entries


def find_mount(mounts: list[MountEntry], path: Path, st_dev: int) -> MountEntry | None:
    """The mount holding the resolved `path` whose device is `st_dev`.

    Longest mount-point prefix alone is wrong when a later mount hides an earlier, deeper one,
    so entries whose device matches the file's own st_dev are preferred.
    """
    dev = (os.major(st_dev), os.minor(st_dev))
    best: tuple[bool, int, int] | None = None
    chosen: MountEntry | None = None
    for index, entry in enumerate(mounts):
        if entry.mount_point != path and entry.mount_point not in path.parents:
            continue
        key = ((entry.major, entry.minor) == dev, len(entry.mount_point.parts), index)
        if best is None or key > best:
            best, chosen = key, entry
    return chosen


def other_mounts(mounts: list[MountEntry], mount: MountEntry) -> tuple[Path, ...]:
    """Mount points showing other parts of `mount`'s filesystem: same device, another root.

    The same root mounted twice is one place seen twice; another root (a bind mount of a
    subdirectory, a btrfs subvolume) is a part of the filesystem others write to.
    """
    found = (
        entry.mount_point
        for entry in mounts
        if (entry.major, entry.minor) == (mount.major, mount.minor) and entry.root != mount.root
    )
    return tuple(dict.fromkeys(found))


def _read_flag(path: Path) -> bool | None:
    try:
        return path.read_text(encoding="ascii").strip() == "1"
    except OSError:
        return None


def block_device_flags(major: int, minor: int, sysfs: Path = SYSFS) -> tuple[bool | None, bool]:
    """(rotational, dax) of a block device; the queue lives on the whole disk, not a partition."""
    try:
        device_dir = (sysfs / "dev" / "block" / f"{major}:{minor}").resolve(strict=True)
    except OSError:
        return None, False
    if (device_dir / "partition").exists():
        device_dir = device_dir.parent
    queue = device_dir / "queue"
    return _read_flag(queue / "rotational"), _read_flag(queue / "dax") is True


def block_dev_numbers(mount: MountEntry) -> tuple[int, int] | None:
    """(major, minor) of the block device under `mount`; None for tmpfs, overlay and the like."""
    # btrfs and friends report an anonymous 0:N in mountinfo; the source node knows the disk.
    if mount.source.startswith("/"):
        try:
            st = os.stat(mount.source)
        except OSError:
            st = None
        if st is not None and stat.S_ISBLK(st.st_mode):
            return os.major(st.st_rdev), os.minor(st.st_rdev)
    if mount.major != 0:
        return mount.major, mount.minor
    return None


# --------------------------------------------------------------------------------------------
# RAM


def parse_meminfo(text: str) -> dict[str, int]:
    """/proc/meminfo as bytes by field name ("kB" values scaled, unit-less counts kept)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if not parts or not parts[0].isdigit():
            continue
        scale = 1024 if parts[1:] == ["kB"] else 1
        values[name.strip()] = int(parts[0]) * scale
    return values


def read_host_ram(meminfo: Path = MEMINFO) -> HostRam | None:
    """RAM and swap of this host; None when /proc/meminfo cannot be read or lacks MemTotal."""
    try:
        values = parse_meminfo(meminfo.read_text(encoding="ascii"))
    except OSError:
        return None
    if "MemTotal" not in values:
        return None
    return HostRam(
        mem_total_bytes=values["MemTotal"],
        # MemAvailable exists since Linux 3.14; MemFree understates, which is the safe side.
        mem_available_bytes=values.get("MemAvailable", values.get("MemFree", 0)),
        swap_total_bytes=values.get("SwapTotal", 0),
        swap_free_bytes=values.get("SwapFree", 0),
    )


# --------------------------------------------------------------------------------------------
# permissions


def resolve_user(user: str) -> tuple[int, frozenset[int]] | None:
    """(uid, group ids) the way libvirt resolves qemu.conf's user; None when it does not exist."""
    numeric = user[1:] if user.startswith("+") else None
    entry: pwd.struct_passwd | None = None
    if numeric is None:
        try:
            entry = pwd.getpwnam(user)
        except KeyError:
            # virGetUserID falls back to reading a bare number when no such name exists.
            numeric = user if user.isdigit() else None
    if entry is None:
        if not numeric or not numeric.isdigit():
            return None
        try:
            entry = pwd.getpwuid(int(numeric))
        except KeyError:
            return int(numeric), frozenset()
    return entry.pw_uid, frozenset(os.getgrouplist(entry.pw_name, entry.pw_gid))


def dac_allows(st: os.stat_result, uid: int, gids: frozenset[int], want: int) -> bool:
    """Whether classic POSIX mode bits grant `want` (an rwx mask, e.g. 0o1 = x) to uid/gids.

    The owner class is decided first and alone, as the kernel does: an owner denied by the
    owner bits is not rescued by the group or other bits. ACLs and MAC policies are not read.
    """
    if uid == 0:
        return True
    if st.st_uid == uid:
        granted = (st.st_mode >> 6) & 0o7
    elif st.st_gid in gids:
        granted = (st.st_mode >> 3) & 0o7
    else:
        granted = st.st_mode & 0o7
    return granted & want == want


def _write_problem(target: Path, user: str, read_only: bool) -> str | None:
    """Why QEMU's user could not create its memory file under `target`, or None.

    libvirtd (root) creates <dir>/<id>-<name>/ for each guest and hands it to QEMU's user,
    and creates and chowns a missing memory_backing_dir itself when it starts; so what the
    user needs is search permission on every existing component down to `target`.
    """
    if read_only:
        return "the filesystem is mounted read-only"
    ids = resolve_user(user)
    if ids is None:
        return f"user {user!r} does not exist on this host"
    uid, gids = ids
    for component in [*reversed(target.parents), target]:
        st = os.stat(component)
        if not stat.S_ISDIR(st.st_mode):
            return f"{component} is not a directory"
        if not dac_allows(st, uid, gids, 0o1):
            return (
                f"{user} may not enter {component} "
                f"(mode {stat.S_IMODE(st.st_mode):04o}, owner {st.st_uid}:{st.st_gid})"
            )
    return None


# --------------------------------------------------------------------------------------------
# the store


@dataclass(frozen=True)
class StoreFacts:
    """What the host says about memory_backing_dir; sizes are bytes.

    size_bytes and free_bytes are what the store can hold and still take: the filesystem's own
    figures, cut down to RAM (+ swap) for a tmpfs or ramfs (see capacity.store_room).
    """

    path: Path
    exists: bool
    mount_point: Path
    is_mount_point: bool
    device: str
    fs_type: str
    rotational: bool | None
    dax: bool
    size_bytes: int
    free_bytes: int
    qemu_user: str
    qemu_can_write: bool
    write_problem: str | None  # why qemu_can_write is False, in words
    fs_size_bytes: int | None = None  # statvfs size (0 for ramfs); None: same as size_bytes
    ram_limit_bytes: int | None = None  # RAM-backed: MemTotal (+ SwapTotal for tmpfs)
    on_root_fs: bool = False  # the store shares the root filesystem
    other_mounts: tuple[Path, ...] = ()  # other parts of the store's filesystem, mounted

    def as_dict(self) -> dict[str, Any]:
        facts = asdict(self)
        facts["path"] = str(self.path)
        facts["mount_point"] = str(self.mount_point)
        facts["other_mounts"] = [str(mount) for mount in self.other_mounts]
        return facts


def _nearest_existing(path: Path) -> Path:
    current = path.absolute()
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def _read_mounts(mountinfo: Path) -> list[MountEntry]:
    try:
        return parse_mountinfo(mountinfo.read_text(encoding="utf-8", errors="surrogateescape"))
    except OSError:
        return []


@dataclass(frozen=True)
class _Location:
    mount_point: Path
    device: str
    fs_type: str
    read_only: bool
    rotational: bool | None
    dax: bool


def _locate(mount: MountEntry | None, sysfs: Path) -> _Location:
    if mount is None:
        return _Location(Path("/"), "unknown", "unknown", False, None, False)
    rotational: bool | None = None
    dax = bool({"dax", "dax=always"} & mount.options)
    numbers = block_dev_numbers(mount)
    if numbers is not None:
        rotational, device_dax = block_device_flags(*numbers, sysfs=sysfs)
        dax = dax or device_dax
    return _Location(
        mount.mount_point, mount.source, mount.fs_type, "ro" in mount.options, rotational, dax
    )


def _room(target: Path, fs_type: str, meminfo: Path) -> tuple[int, StoreRoom]:
    """(the filesystem's own size, the store's room); RAM is read only for a RAM-backed store."""
    vfs = os.statvfs(target)
    size, free = vfs.f_blocks * vfs.f_frsize, vfs.f_bavail * vfs.f_frsize
    ram = read_host_ram(meminfo) if fs_type in RAM_FILESYSTEMS else None
    return size, store_room(fs_type, size, free, ram)


def _on_root_fs(
    mounts: list[MountEntry], mount: MountEntry | None, st: os.stat_result, root: Path
) -> bool:
    # btrfs gives each subvolume its own st_dev; mountinfo's device is the filesystem's.
    root_st = os.stat(root)
    if st.st_dev == root_st.st_dev:
        return True
    root_mount = find_mount(mounts, root.resolve(), root_st.st_dev)
    return (
        mount is not None
        and root_mount is not None
        and (mount.major, mount.minor) == (root_mount.major, root_mount.minor)
    )


def inspect_store(
    path: Path,
    qemu_user: str,
    *,
    mountinfo: Path = MOUNTINFO,
    sysfs: Path = SYSFS,
    meminfo: Path = MEMINFO,
    root: Path = Path("/"),
) -> StoreFacts:
    """Facts about `path`, or about its nearest existing ancestor while libvirt has not made it."""
    exists = path.exists()
    target = _nearest_existing(path).resolve()
    st = os.stat(target)
    mounts = _read_mounts(mountinfo)
    mount = find_mount(mounts, target, st.st_dev)
    where = _locate(mount, sysfs)
    fs_size, room = _room(target, where.fs_type, meminfo)
    problem = _write_problem(target, qemu_user, where.read_only)
    return StoreFacts(
        path=path,
        exists=exists,
        mount_point=where.mount_point,
        is_mount_point=exists and target == where.mount_point,
        device=where.device,
        fs_type=where.fs_type,
        rotational=where.rotational,
        dax=where.dax,
        size_bytes=room.size_bytes,
        free_bytes=room.free_bytes,
        qemu_user=qemu_user,
        qemu_can_write=problem is None,
        write_problem=problem,
        fs_size_bytes=fs_size,
        ram_limit_bytes=room.ram_limit_bytes,
        on_root_fs=_on_root_fs(mounts, mount, st, root),
        other_mounts=() if mount is None else other_mounts(mounts, mount),
    )


# --------------------------------------------------------------------------------------------
# guests' memory files


def _inside(candidate: Path, root: Path) -> bool:
    try:
        candidate.resolve(strict=True).relative_to(root)
    except (OSError, ValueError):
        return False
    return True


def _domain_dirs(backing_dir: Path) -> Iterator[tuple[int, Path]]:
    """(domain id, directory) for each <id>-<name> directory really inside `backing_dir`."""
    try:
        root = backing_dir.resolve(strict=True)
        entries = sorted(os.scandir(backing_dir), key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        match = _DOMAIN_DIR_RE.match(entry.name)
        if not match or not entry.is_dir(follow_symlinks=False):
            continue
        if _inside(Path(entry.path), root):
            yield int(match.group(1)), Path(entry.path)


def _usage_in(domain_dir: Path) -> MemoryFileUsage | None:
    """The memory file in `domain_dir`; NUMA guests have one per node, summed under the dir."""
    try:
        root = domain_dir.resolve(strict=True)
        entries = sorted(os.scandir(domain_dir), key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return None  # the guest stopped while we looked
    files: dict[tuple[int, int], tuple[Path, os.stat_result]] = {}
    for entry in entries:
        if not entry.is_file(follow_symlinks=False) or not _inside(Path(entry.path), root):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        # Hard links share blocks: count each inode once.
        files.setdefault((st.st_dev, st.st_ino), (Path(entry.path), st))
    if not files:
        return None
    found = list(files.values())
    return MemoryFileUsage(
        path=found[0][0] if len(found) == 1 else domain_dir,
        nominal_bytes=sum(st.st_size for _, st in found),
        allocated_bytes=sum(st.st_blocks * 512 for _, st in found),
    )


def guest_memory_dir(backing_dir: Path, domain_id: int) -> Path | None:
    """libvirt's <backing_dir>/<id>-<shortname>/ for a running domain, if it is there."""
    for found_id, directory in _domain_dirs(backing_dir):
        if found_id == domain_id:
            return directory
    return None


def guest_memory_file(backing_dir: Path, domain_id: int) -> MemoryFileUsage | None:
    directory = guest_memory_dir(backing_dir, domain_id)
    return None if directory is None else _usage_in(directory)


def all_memory_files(backing_dir: Path) -> dict[int, MemoryFileUsage]:
    """Memory files keyed by domain id; a directory we may not read raises, never undercounts."""
    usages: dict[int, MemoryFileUsage] = {}
    for domain_id, directory in _domain_dirs(backing_dir):
        usage = _usage_in(directory)
        if usage is not None and domain_id not in usages:
            usages[domain_id] = usage
    return usages
