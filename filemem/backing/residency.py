"""Working-set probes: page-cache residency of memory files, process and host memory pressure."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from filemem.backing.store import (
    MOUNTINFO,
    SYSFS,
    block_dev_numbers,
    find_mount,
    parse_mountinfo,
)

PROC = Path("/proc")
LIBVIRT_QEMU_RUN_DIR = Path("/run/libvirt/qemu")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
SECTOR_BYTES = 512  # /sys/block/*/stat counts 512-byte sectors whatever the device's own size

# mincore(2) needs one vector byte per page: 256 MiB of file per call bounds that buffer.
_MINCORE_CHUNK_PAGES = 65536
# mincore's vector bytes: bit 0 is "resident"; the other bits are reserved.
_LOW_BIT = bytes(i & 1 for i in range(256))
_PROT_READ = 0x1
_MAP_SHARED = 0x01


# --------------------------------------------------------------------------------------------
# files: how much of a memory file is in the page cache


@dataclass(frozen=True)
class FileResidency:
    """A file's size (st_size), blocks on the store (st_blocks) and pages in RAM, in bytes."""

    nominal_bytes: int
    allocated_bytes: int
    resident_bytes: int


@functools.cache
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_long,  # off_t on LP64
    ]
    libc.munmap.restype = ctypes.c_int
    libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    libc.mincore.restype = ctypes.c_int
    libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    return libc


def _os_error(call: str, path: Path) -> OSError:
    errno = ctypes.get_errno()
    return OSError(errno, f"{call}: {os.strerror(errno)}", str(path))


def count_resident(vector: bytes) -> int:
    """Pages marked resident in a mincore(2) vector."""
    return vector.translate(_LOW_BIT).count(1)


def _mincore_pages(fd: int, length: int, path: Path) -> int:
    """Resident pages of the first `length` bytes of `fd`, without faulting any in.

    A read-only shared mapping that is never touched costs address space only; mincore then
    reads the page cache (and swap cache, for tmpfs) through it.
    """
    libc = _libc()
    addr = libc.mmap(None, length, _PROT_READ, _MAP_SHARED, fd, 0)
    if addr is None or addr == ctypes.c_void_p(-1).value:
        raise _os_error("mmap", path)
    try:
        vector = ctypes.create_string_buffer(_MINCORE_CHUNK_PAGES)
        chunk = _MINCORE_CHUNK_PAGES * PAGE_SIZE
        resident = 0
        for offset in range(0, length, chunk):
            size = min(chunk, length - offset)
            if libc.mincore(addr + offset, size, vector) != 0:
                raise _os_error("mincore", path)
            resident += count_resident(vector.raw[: -(-size // PAGE_SIZE)])
        return resident
    finally:
        libc.munmap(addr, length)


def _may_see_page_cache(st: os.stat_result, fd: int) -> bool:
    """Whether mincore tells us the truth about the file's page cache.

    Since Linux 5.0 (can_do_mincore) mincore on a file mapping reports the page cache only to
    the file's owner, a capable caller or one who may write the file; to anyone else it
    reports every page resident, which would make a cold file look hot.
    """
    euid = os.geteuid()
    return euid in (0, st.st_uid) or os.access(f"/proc/self/fd/{fd}", os.W_OK, effective_ids=True)


def file_residency(path: Path) -> FileResidency | None:
    """Nominal, allocated and page-cache-resident bytes of `path`; None once the file is gone.

    Raises PermissionError when the kernel would not tell us the truth (see
    _may_see_page_cache) rather than report a made-up figure, and OSError for a symlink or a
    file that is not a regular file.
    """
    try:
        # NOFOLLOW and NONBLOCK: a QEMU user owns the directory and could plant a link or FIFO.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"{path} is not a regular file")
        if not _may_see_page_cache(st, fd):
            raise PermissionError(
                f"{path}: mincore shows the page cache only to the file's owner, root or a "
                "writer; run as one of them"
            )
        resident = _mincore_pages(fd, st.st_size, path) if st.st_size else 0
    finally:
        os.close(fd)
    return FileResidency(st.st_size, st.st_blocks * 512, min(resident * PAGE_SIZE, st.st_size))


# --------------------------------------------------------------------------------------------
# processes


@dataclass(frozen=True)
class ProcessMemory:
    """A process's resident memory by kind, in bytes, and its major faults so far.

    A guest's memory file counts as rss_file on a disk filesystem but as rss_shmem on tmpfs.
    Major faults include those KVM takes on behalf of vCPUs (get_user_pages counts them).
    """

    rss_bytes: int
    rss_file_bytes: int
    rss_anon_bytes: int
    major_faults: int
    rss_shmem_bytes: int = 0


def parse_status(text: str) -> dict[str, int]:
    """The "kB" lines of /proc/<pid>/status as bytes by name (VmRSS, RssAnon, RssFile, ...)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            values[name] = int(parts[0]) * 1024
    return values


def parse_major_faults(stat_text: str) -> int:
    """majflt (field 12) of /proc/<pid>/stat; the command name may hold spaces and ')'."""
    after_comm = stat_text[stat_text.rindex(")") + 1 :].split()
    return int(after_comm[12 - 3])  # after_comm starts at field 3, state


def process_memory_of(status_text: str, stat_text: str) -> ProcessMemory:
    """ProcessMemory from the text of /proc/<pid>/status and /proc/<pid>/stat."""
    status = parse_status(status_text)
    # Kernel threads have no Vm*/Rss* lines: they own no user memory.
    return ProcessMemory(
        rss_bytes=status.get("VmRSS", 0),
        rss_file_bytes=status.get("RssFile", 0),
        rss_anon_bytes=status.get("RssAnon", 0),
        major_faults=parse_major_faults(stat_text),
        rss_shmem_bytes=status.get("RssShmem", 0),
    )


def process_memory(pid: int, *, proc: Path = PROC) -> ProcessMemory | None:
    """Resident memory and major faults of process `pid`; None once it has exited."""
    try:
        status_text = (proc / str(pid) / "status").read_text(encoding="utf-8", errors="replace")
        stat_text = (proc / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None
    return process_memory_of(status_text, stat_text)


def qemu_pid(
    domain_name: str, run_dir: Path = LIBVIRT_QEMU_RUN_DIR, *, proc: Path = PROC
) -> int | None:
    """The QEMU process of a running domain from libvirt's <run_dir>/<name>.pid, if alive."""
    if not domain_name or "/" in domain_name or domain_name in (".", ".."):
        raise ValueError(f"{domain_name!r} is not a domain name")
    try:
        text = (run_dir / f"{domain_name}.pid").read_text(encoding="ascii").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    if not text.isdigit():
        return None
    pid = int(text)
    # libvirt removes the file when the domain stops; a crash may leave it behind.
    return pid if (proc / str(pid)).exists() else None


# --------------------------------------------------------------------------------------------
# the host


@dataclass(frozen=True)
class Psi:
    """One line of /proc/pressure/memory: % of time stalled over 10/60/300 s, total in µs."""

    avg10: float
    avg60: float
    avg300: float
    total_us: int


@dataclass(frozen=True)
class HostPressure:
    """Host-wide memory pressure counters from /proc/vmstat and PSI.

    refaults_anon is None on kernels before 5.9, which track file refaults only (and call them
    workingset_refault); psi_* are None when the kernel has no PSI (or booted with psi=0).
    """

    refaults_file: int
    refaults_anon: int | None
    major_faults: int  # pgmajfault: pages read in because they were touched
    psi_some: Psi | None = None
    psi_full: Psi | None = None

    @property
    def refaults(self) -> int:
        return self.refaults_file + (self.refaults_anon or 0)


def parse_vmstat(text: str) -> dict[str, int]:
    values: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            values[parts[0]] = int(parts[1])
    return values


def parse_psi(text: str) -> dict[str, Psi]:
    """Lines of /proc/pressure/<resource> by kind ("some", "full")."""
    lines: dict[str, Psi] = {}
    for line in text.splitlines():
        kind, *pairs = line.split()
        fields = dict(pair.split("=", 1) for pair in pairs if "=" in pair)
        try:
            lines[kind] = Psi(
                float(fields["avg10"]),
                float(fields["avg60"]),
                float(fields["avg300"]),
                int(fields["total"]),
            )
        except (KeyError, ValueError):
            continue
    return lines


def host_pressure_of(vmstat_text: str, psi_text: str | None) -> HostPressure:
    """HostPressure from the text of /proc/vmstat and /proc/pressure/memory (None: no PSI)."""
    vmstat = parse_vmstat(vmstat_text)
    psi = parse_psi(psi_text) if psi_text is not None else {}
    return HostPressure(
        refaults_file=vmstat.get("workingset_refault_file", vmstat.get("workingset_refault", 0)),
        refaults_anon=vmstat.get("workingset_refault_anon"),
        major_faults=vmstat.get("pgmajfault", 0),
        psi_some=psi.get("some"),
        psi_full=psi.get("full"),
    )


def host_memory_pressure(*, proc: Path = PROC) -> HostPressure:
    vmstat_text = (proc / "vmstat").read_text(encoding="ascii")
    try:
        psi_text: str | None = (proc / "pressure" / "memory").read_text(encoding="ascii")
    except OSError:
        # absent without CONFIG_PSI or with psi=0; EOPNOTSUPP where PSI is compiled out later
        psi_text = None
    return host_pressure_of(vmstat_text, psi_text)


def sectors_written(disk_stat_text: str) -> int:
    """Field 7 of /sys/block/<dev>/stat (and of a partition's stat): sectors written."""
    return int(disk_stat_text.split()[6])


def block_device_of(path: Path, *, mountinfo: Path = MOUNTINFO) -> tuple[int, int] | None:
    """(major, minor) of the block device holding `path`; None for tmpfs, overlay and such."""
    st = os.stat(path)
    if os.major(st.st_dev) != 0:
        return os.major(st.st_dev), os.minor(st.st_dev)
    # An anonymous device: btrfs names its disk in mountinfo, tmpfs and overlay have none.
    try:
        mounts = parse_mountinfo(mountinfo.read_text(encoding="utf-8", errors="surrogateescape"))
    except OSError:
        return None
    mount = find_mount(mounts, path.resolve(), st.st_dev)
    return None if mount is None else block_dev_numbers(mount)


def device_write_bytes(
    path: Path, *, sysfs: Path = SYSFS, mountinfo: Path = MOUNTINFO
) -> int | None:
    """Bytes written so far to the block device holding `path`; None without a block device."""
    numbers = block_device_of(path, mountinfo=mountinfo)
    if numbers is None:
        return None
    major, minor = numbers
    try:
        text = (sysfs / "dev" / "block" / f"{major}:{minor}" / "stat").read_text(encoding="ascii")
    except OSError:
        return None
    return sectors_written(text) * SECTOR_BYTES


# --------------------------------------------------------------------------------------------
# rates


@dataclass(frozen=True)
class Counters:
    """Monotonic counters read at one moment; two of them give rates()."""

    page_ins: int  # major faults (host pgmajfault, or a process's majflt)
    refaults: int
    write_bytes: int | None  # to the store's block device; None without one


@dataclass(frozen=True)
class Rates:
    """Per-second rates between two Counters; None where a counter went back (reset)."""

    page_ins_per_s: float | None
    refaults_per_s: float | None
    write_bytes_per_s: float | None


def host_counters(store_path: Path) -> Counters:
    """The host's counters now, writes counted on the device holding `store_path`."""
    pressure = host_memory_pressure()
    return Counters(pressure.major_faults, pressure.refaults, device_write_bytes(store_path))


def _rate(before: int | None, after: int | None, seconds: float) -> float | None:
    if before is None or after is None or after < before:
        return None
    return (after - before) / seconds


def rates(before: Counters, after: Counters, seconds: float) -> Rates:
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    return Rates(
        page_ins_per_s=_rate(before.page_ins, after.page_ins, seconds),
        refaults_per_s=_rate(before.refaults, after.refaults, seconds),
        write_bytes_per_s=_rate(before.write_bytes, after.write_bytes, seconds),
    )
