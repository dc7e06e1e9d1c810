"""Guest resource partition: the cgroup under /machine that QEMU runs in, and its memory limit."""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from filemem.exceptions import ConfigError

__all__ = [
    "CGROUP_ROOT",
    "Hierarchy",
    "MemoryUsage",
    "Partition",
    "PartitionPlan",
    "check_memory_limit",
    "ensure_partition",
    "find_hierarchies",
    "libvirt_partition_path",
    "memory_limit_value",
    "parse_kernel_controllers",
    "parse_limit",
    "parse_memory_stat",
    "parse_oom_kills",
    "partition_dir_name",
    "partition_memory_usage",
    "plan_partition",
    "qemu_pids_in",
    "remove_partition",
    "remove_unused_partition",
    "validate_partition_name",
]

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUPS = Path("/proc/cgroups")
PROC = Path("/proc")

PARTITION_OPTION = "[libvirt] guest_partition"
LIMIT_OPTION = "[libvirt] guest_memory_limit_mb"

# libvirt's top-level partition; it creates this directory itself only for guests placed directly
# in /machine, so a partition below it needs it to exist already.
MACHINE = "machine"
# The v1 controllers libvirt's cgroup backend knows (vircgroup.h). It makes a guest's group in
# each mounted one and fails the start when the partition directory is missing from cpu, cpuset,
# memory or freezer (measured with libvirt 9.0); blkio is tolerated, the rest are created for
# safety. pids, hugetlb and named hierarchies (name=systemd) are left alone by libvirt.
LIBVIRT_V1_CONTROLLERS = frozenset(
    {
        "cpu",
        "cpuacct",
        "cpuset",
        "memory",
        "devices",
        "freezer",
        "blkio",
        "net_cls",
        "perf_event",
    }
)
# cpuset children start with empty cpus/mems, and no task can join a cpuset that has none.
CPUSET_FILES = ("cpuset.cpus", "cpuset.mems")

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
# The kernel's "no limit" is PAGE_COUNTER_MAX pages, printed as about 2**63; nothing real is near.
_UNLIMITED_FROM = 1 << 62


@dataclass(frozen=True)
class Hierarchy:
    """A mounted cgroup hierarchy: v1 with its controllers, or the unified v2 tree (none)."""

    mount: Path
    controllers: frozenset[str]

    @property
    def unified(self) -> bool:
        return not self.controllers


@dataclass(frozen=True)
class PartitionPlan:
    """Where a partition lives: its directory in every hierarchy libvirt uses (parents first)."""

    name: str
    libvirt_path: str
    directories: tuple[Path, ...]  # each hierarchy's machine/<dir>, in hierarchy order
    memory_dir: Path
    cpuset_dirs: tuple[Path, ...]  # machine and machine/<dir> in the cpuset hierarchy


@dataclass(frozen=True)
class Partition:
    """An existing partition, as ensure_partition left it."""

    name: str
    libvirt_path: str  # what goes in <resource><partition>
    directories: tuple[Path, ...]
    memory_dir: Path
    memory_limit_bytes: int | None  # as the kernel holds it (page-rounded); None = no limit


@dataclass(frozen=True)
class MemoryUsage:
    """The partition's memory cgroup counters, guests' child cgroups included."""

    usage_bytes: int
    max_usage_bytes: int
    limit_bytes: int | None
    failcnt: int  # times a charge hit the limit (reclaim followed, or an OOM kill)
    cache_bytes: int  # page cache: file-backed guest memory, images, logs
    rss_bytes: int  # anonymous memory: QEMU itself, and a RAM-backed guest's memory
    # OOM kills recorded in the partition and its live child cgroups; None if the kernel has no
    # counter. cgroup v1 counts a kill only in the victim's own cgroup, which libvirt removes
    # when QEMU dies, so a killed guest usually shows as failcnt and a crashed domain instead.
    oom_kills: int | None


# -- pure policy ------------------------------------------------------------------------------


def validate_partition_name(name: str) -> str:
    """``name`` if it is one safe directory name below /machine, else ConfigError."""
    if not _NAME_RE.fullmatch(name):
        raise ConfigError(
            PARTITION_OPTION,
            f"{name!r} is not a partition name: use 1-63 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (one name below /machine, not a path)",
        )
    return name


def check_memory_limit(partition_name: str, memory_limit_mb: int) -> None:
    """A memory limit is the limit of the guests' partition: refuse one without a partition."""
    if memory_limit_mb < 0:
        raise ConfigError(LIMIT_OPTION, f"{memory_limit_mb} MiB is negative; 0 means no limit")
    if memory_limit_mb and not partition_name:
        raise ConfigError(
            LIMIT_OPTION,
            f"{memory_limit_mb} MiB needs [libvirt] guest_partition to be set: the limit is "
            "that partition's, and libvirt's default partition /machine is shared with every "
            "other guest on this host",
        )


def libvirt_partition_path(name: str) -> str:
    """The partition as libvirt's <resource><partition> names it."""
    return f"/{MACHINE}/{validate_partition_name(name)}"


def partition_dir_name(name: str, kernel_controllers: Iterable[str]) -> str:
    """The directory libvirt uses for /machine/<name> (its virCgroupSetPartitionSuffix rules).

    A name without a dot gets ".partition" appended; a result that could be mistaken for a
    control file ("<controller>.*", "cgroup.*", leading "_" or ".") gets a leading "_".
    """
    directory = name if "." in name else f"{name}.partition"
    prefixes = ("cgroup.", *(f"{c}." for c in kernel_controllers))
    if directory.startswith(("_", ".")) or directory.startswith(prefixes):
        directory = f"_{directory}"
    return directory


def plan_partition(
    name: str,
    hierarchies: Iterable[Hierarchy],
    kernel_controllers: Iterable[str],
) -> PartitionPlan:
    """Which directories partition ``name`` needs, given the mounted hierarchies."""
    libvirt_path = libvirt_partition_path(name)
    directory = partition_dir_name(name, kernel_controllers)
    used = [h for h in hierarchies if h.unified or h.controllers & LIBVIRT_V1_CONTROLLERS]
    memory = [h for h in used if "memory" in h.controllers]
    if not memory:
        raise ConfigError(
            LIMIT_OPTION,
            "the cgroup v1 memory controller is not mounted, and filemem sets the guests' "
            "memory limit through it: mount it or leave [libvirt] guest_partition and "
            "guest_memory_limit_mb unset",
        )
    cpuset = [h for h in used if "cpuset" in h.controllers]
    return PartitionPlan(
        name=name,
        libvirt_path=libvirt_path,
        directories=tuple(h.mount / MACHINE / directory for h in used),
        memory_dir=memory[0].mount / MACHINE / directory,
        cpuset_dirs=tuple(
            p for h in cpuset for p in (h.mount / MACHINE, h.mount / MACHINE / directory)
        ),
    )


def memory_limit_value(limit_bytes: int | None) -> str:
    """What to write to memory.limit_in_bytes: "-1" lifts a limit set earlier."""
    if limit_bytes is None:
        return "-1"
    if limit_bytes <= 0:
        # 0 would not mean "no limit" to the kernel but "no memory at all".
        raise ValueError(f"a memory limit must be positive or None, not {limit_bytes}")
    return str(limit_bytes)


def parse_limit(text: str) -> int | None:
    """memory.limit_in_bytes as bytes, None for "no limit"."""
    value = int(text.strip())
    return None if value < 0 or value >= _UNLIMITED_FROM else value


def parse_memory_stat(text: str) -> dict[str, int]:
    """memory.stat's "key value" lines."""
    stats = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            stats[key] = int(value)
    return stats


def parse_oom_kills(text: str) -> int | None:
    """The oom_kill count of memory.oom_control; None on kernels without it (before 4.13)."""
    return parse_memory_stat(text).get("oom_kill")


def oom_killed_pids(kernel_log: str, partition: Partition) -> list[int]:
    """PIDs the kernel's OOM killer killed for this partition's memory limit, from dmesg text.

    cgroup v1 counts a kill only in the victim's own cgroup, which libvirt removes with the dead
    guest, so the kernel log is the lasting record: its oom-kill line names the limited cgroup.
    """
    memcg = re.escape(f"/{MACHINE}/{partition.memory_dir.name}")
    return [
        int(pid) for pid in re.findall(rf"oom-kill:.*oom_memcg={memcg},.*pid=(\d+)", kernel_log)
    ]


def parse_kernel_controllers(text: str) -> list[str]:
    """Controller names from /proc/cgroups (first column; "#subsys_name" is the header)."""
    return [
        line.split()[0] for line in text.splitlines() if line.strip() and not line.startswith("#")
    ]


def _hierarchy_from(mount: Path, files: Iterable[str]) -> Hierarchy | None:
    names = set(files)
    if "tasks" in names:
        return Hierarchy(mount, frozenset(mount.name.split(",")))
    if "cgroup.controllers" in names:
        return Hierarchy(mount, frozenset())
    return None


# -- I/O ----------------------------------------------------------------------------------------


def find_hierarchies(cgroup_root: Path = CGROUP_ROOT) -> list[Hierarchy]:
    """The hierarchies mounted below ``cgroup_root``, named as Debian/systemd mount them
    ("cpu,cpuacct" with "cpu" and "cpuacct" symlinks; "unified" for v2). A cgroup_root that
    is itself a v2 mount (a pure cgroup v2 host) has no v1 hierarchies."""
    found: dict[Path, Hierarchy] = {}
    if _hierarchy_from(cgroup_root, _list(cgroup_root)) is not None:
        return []
    for entry in sorted(cgroup_root.iterdir()):
        real = entry.resolve()
        if real in found or not real.is_dir():
            continue
        hierarchy = _hierarchy_from(real, _list(real))
        if hierarchy is not None:
            found[real] = hierarchy
    return list(found.values())


def ensure_partition(
    name: str,
    memory_limit_bytes: int | None,
    cgroup_root: Path = CGROUP_ROOT,
    proc_cgroups: Path = PROC_CGROUPS,
) -> Partition:
    """Create partition ``name`` where missing and set its memory limit (None: no limit).

    Idempotent: existing directories and cpuset values are kept, the limit is (re)written.
    """
    memory_limit_value(memory_limit_bytes)  # refuse a bad value before touching anything
    kernel = parse_kernel_controllers(_read(proc_cgroups))
    plan = plan_partition(name, find_hierarchies(cgroup_root), kernel)
    for directory in plan.directories:
        for path in (directory.parent, directory):
            try:
                path.mkdir(mode=0o755, exist_ok=True)
            except OSError as exc:
                raise ConfigError(
                    PARTITION_OPTION,
                    f"cannot create cgroup {path}: {exc.strerror}",
                ) from exc
    for path in plan.cpuset_dirs:
        for file in CPUSET_FILES:
            if not _read(path / file).strip():
                _write(path / file, _read(path.parent / file).strip(), PARTITION_OPTION)
    _write(
        plan.memory_dir / "memory.limit_in_bytes",
        memory_limit_value(memory_limit_bytes),
        LIMIT_OPTION,
        plan.memory_dir,
    )
    return Partition(
        name=plan.name,
        libvirt_path=plan.libvirt_path,
        directories=plan.directories,
        memory_dir=plan.memory_dir,
        memory_limit_bytes=parse_limit(_read(plan.memory_dir / "memory.limit_in_bytes")),
    )


def partition_memory_usage(partition: Partition) -> MemoryUsage:
    """The partition's memory counters, read now."""
    memory = partition.memory_dir
    stat = parse_memory_stat(_read(memory / "memory.stat"))
    kills = [parse_oom_kills(_read(d / "memory.oom_control")) for d in _cgroup_tree(memory)]
    known = [k for k in kills if k is not None]
    return MemoryUsage(
        usage_bytes=int(_read(memory / "memory.usage_in_bytes")),
        max_usage_bytes=int(_read(memory / "memory.max_usage_in_bytes")),
        limit_bytes=parse_limit(_read(memory / "memory.limit_in_bytes")),
        failcnt=int(_read(memory / "memory.failcnt")),
        # total_* include the child cgroups libvirt makes per guest; the plain ones do not.
        cache_bytes=stat.get("total_cache", stat.get("cache", 0)),
        rss_bytes=stat.get("total_rss", stat.get("rss", 0)),
        oom_kills=sum(known) if known else None,
    )


def qemu_pids_in(partition: Partition, proc_root: Path = PROC) -> list[int]:
    """Processes named qemu* in the partition's memory cgroup or below it, sorted."""
    pids = set()
    for directory in _cgroup_tree(partition.memory_dir):
        for line in _read(directory / "cgroup.procs").split():
            try:
                comm = (proc_root / line / "comm").read_text().strip()
            except OSError:
                continue  # exited meanwhile
            if comm.startswith("qemu"):
                pids.add(int(line))
    return sorted(pids)


def remove_partition(partition: Partition, wait: float = 0.0) -> None:
    """rmdir the partition's directories (not /machine); the partition must hold no guest.

    libvirt removes a stopped guest's own cgroup a moment after destroy returns: `wait` gives
    it that many seconds before the ConfigError for a busy directory is raised.
    """
    deadline = time.monotonic() + wait
    while True:
        try:
            _remove_directories(partition)
            return
        except ConfigError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def remove_unused_partition(
    name: str,
    wait: float = 0.0,
    cgroup_root: Path = CGROUP_ROOT,
    proc_cgroups: Path = PROC_CGROUPS,
) -> bool:
    """rmdir partition ``name``'s directories if no guest cgroup is left in them; False (and
    nothing raised) when one still is after `wait` seconds: the partition is still in use."""
    kernel = parse_kernel_controllers(_read(proc_cgroups))
    plan = plan_partition(name, find_hierarchies(cgroup_root), kernel)
    try:
        remove_partition(
            Partition(plan.name, plan.libvirt_path, plan.directories, plan.memory_dir, None),
            wait=wait,
        )
    except ConfigError:
        return False
    return True


def _remove_directories(partition: Partition) -> None:
    for directory in partition.directories:
        try:
            directory.rmdir()
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ConfigError(
                PARTITION_OPTION,
                f"cannot remove cgroup {directory}: {exc.strerror}",
            ) from exc


def _cgroup_tree(top: Path) -> list[Path]:
    """``top`` and every cgroup below it; cgroups vanish as guests stop, so misses are fine."""
    tree = []
    for dirpath, dirnames, _files in os.walk(top):
        dirnames.sort()
        tree.append(Path(dirpath))
    return tree


def _list(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def _write(path: Path, value: str, option: str, memory_dir: Path | None = None) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        why = exc.strerror or str(exc)
        if exc.errno == errno.EBUSY and memory_dir is not None:
            usage = _read(memory_dir / "memory.usage_in_bytes").strip() or "?"
            why = (
                f"the guests in it use {usage} bytes and the kernel could not reclaim "
                "enough: stop guests first or raise the limit"
            )
        raise ConfigError(option, f"cannot write {value} to {path}: {why}") from exc
