"""Guest partition: directory plan, cgroup I/O against a tmp cgroup tree, options."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from oslo_config import cfg

from filemem import conf as filemem_conf
from filemem.compute.host_check import driver_settings
from filemem.exceptions import ConfigError
from filemem.virt.libvirt import partition
from filemem.virt.libvirt.partition import Hierarchy

MIB = 1024 * 1024
KERNEL_CONTROLLERS = (
    "cpuset",
    "cpu",
    "cpuacct",
    "blkio",
    "memory",
    "devices",
    "freezer",
    "net_cls",
    "perf_event",
    "net_prio",
    "hugetlb",
    "pids",
)
PROC_CGROUPS = "#subsys_name\thierarchy\tnum_cgroups\tenabled\n" + "".join(
    f"{c}\t{i}\t1\t1\n" for i, c in enumerate(KERNEL_CONTROLLERS)
)
V1 = Path("/sys/fs/cgroup")


def hierarchies(*names: str, unified: bool = True) -> list[Hierarchy]:
    found = [Hierarchy(V1 / n, frozenset(n.split(","))) for n in names]
    return [*found, Hierarchy(V1 / "unified", frozenset())] if unified else found


# -- pure policy --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "directory"),
    [
        ("filemem", "filemem.partition"),
        ("bench-1_a", "bench-1_a.partition"),
        ("with.dot", "with.dot"),  # libvirt adds no suffix to a name that has one
        ("memory", "_memory.partition"),  # "memory.partition" would look like a control file
        ("cpu.x", "_cpu.x"),
        ("cgroup.x", "_cgroup.x"),
        ("cpux", "cpux.partition"),
    ],
)
def test_directory_name_follows_libvirt(name: str, directory: str) -> None:
    assert partition.partition_dir_name(name, KERNEL_CONTROLLERS) == directory


@pytest.mark.parametrize(
    "name",
    [
        "",
        ".",
        "..",
        "../etc",
        "a/b",
        "/machine/x",
        "_x",
        ".hidden",
        "-x",
        "a b",
        "x" * 64,
        "é",
        "x\n",
    ],
)
def test_unsafe_names_are_refused_naming_the_option(name: str) -> None:
    with pytest.raises(ConfigError, match=r"\[libvirt\] guest_partition"):
        partition.validate_partition_name(name)


def test_libvirt_partition_path() -> None:
    assert partition.libvirt_partition_path("filemem") == "/machine/filemem"


def test_plan_covers_the_hierarchies_libvirt_uses_and_the_unified_tree() -> None:
    plan = partition.plan_partition(
        "filemem",
        hierarchies(
            "cpu,cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd"
        ),
        KERNEL_CONTROLLERS,
    )
    assert plan.libvirt_path == "/machine/filemem"
    assert plan.directories == tuple(
        V1 / h / "machine" / "filemem.partition"
        for h in ("cpu,cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "unified")
    )
    assert plan.memory_dir == V1 / "memory/machine/filemem.partition"
    assert plan.cpuset_dirs == (V1 / "cpuset/machine", V1 / "cpuset/machine/filemem.partition")


def test_plan_without_unified_tree() -> None:
    plan = partition.plan_partition(
        "p", hierarchies("cpu", "memory", unified=False), KERNEL_CONTROLLERS
    )
    assert plan.directories == (V1 / "cpu/machine/p.partition", V1 / "memory/machine/p.partition")
    assert plan.cpuset_dirs == ()


def test_plan_refuses_a_host_without_the_v1_memory_controller() -> None:
    with pytest.raises(ConfigError, match="memory controller") as refused:
        partition.plan_partition("p", hierarchies("cpu", "cpuset"), KERNEL_CONTROLLERS)
    assert "guest_memory_limit_mb" in str(refused.value)
    assert "guest_partition" in str(refused.value)


def test_limit_values() -> None:
    assert partition.memory_limit_value(None) == "-1"
    assert partition.memory_limit_value(300 * MIB) == str(300 * MIB)
    for bad in (0, -1):
        with pytest.raises(ValueError, match="positive"):
            partition.memory_limit_value(bad)
    assert partition.parse_limit("9223372036854771712\n") is None  # the kernel's "no limit"
    assert partition.parse_limit("-1") is None
    assert partition.parse_limit("314572800\n") == 300 * MIB


def test_parsers() -> None:
    stat = partition.parse_memory_stat("cache 0\nrss 4096\ntotal_cache 8192\nbogus\n")
    assert stat == {"cache": 0, "rss": 4096, "total_cache": 8192}
    assert partition.parse_oom_kills("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n") == 2
    assert partition.parse_oom_kills("oom_kill_disable 0\nunder_oom 0\n") is None
    assert partition.parse_kernel_controllers(PROC_CGROUPS) == list(KERNEL_CONTROLLERS)


def test_memory_limit_needs_a_partition() -> None:
    partition.check_memory_limit("", 0)
    partition.check_memory_limit("filemem", 0)
    partition.check_memory_limit("filemem", 300)
    with pytest.raises(ConfigError) as refused:
        partition.check_memory_limit("", 300)
    assert "[libvirt] guest_memory_limit_mb" in str(refused.value)
    assert "[libvirt] guest_partition" in str(refused.value)


# -- I/O against a tmp cgroup tree -------------------------------------------------------------


@pytest.fixture
def cgroup_root(tmp_path: Path) -> Path:
    """A Debian-style hybrid layout: v1 hierarchies (with "tasks"), symlinks, unified v2."""
    root = tmp_path / "cgroup"
    for name in (
        "cpu,cpuacct",
        "cpuset",
        "memory",
        "devices",
        "freezer",
        "blkio",
        "pids",
        "systemd",
    ):
        (root / name).mkdir(parents=True)
        (root / name / "tasks").write_text("")
    os.symlink("cpu,cpuacct", root / "cpu")
    os.symlink("cpu,cpuacct", root / "cpuacct")
    (root / "cpuset" / "cpuset.cpus").write_text("0-3\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    (root / "unified").mkdir()
    (root / "unified" / "cgroup.controllers").write_text("hugetlb\n")
    return root


@pytest.fixture
def proc_cgroups(tmp_path: Path) -> Path:
    path = tmp_path / "proc_cgroups"
    path.write_text(PROC_CGROUPS)
    return path


def test_find_hierarchies(cgroup_root: Path) -> None:
    found = {h.mount.name: h.controllers for h in partition.find_hierarchies(cgroup_root)}
    assert found == {
        "blkio": {"blkio"},
        "cpu,cpuacct": {"cpu", "cpuacct"},
        "cpuset": {"cpuset"},
        "devices": {"devices"},
        "freezer": {"freezer"},
        "memory": {"memory"},
        "pids": {"pids"},
        "systemd": {"systemd"},
        "unified": frozenset(),
    }


def test_a_pure_v2_host_has_no_v1_hierarchies(tmp_path: Path, proc_cgroups: Path) -> None:
    (tmp_path / "memory").mkdir()  # a v2 cgroup named "memory", not a v1 hierarchy
    (tmp_path / "cgroup.controllers").write_text("cpu memory\n")
    assert partition.find_hierarchies(tmp_path) == []
    with pytest.raises(ConfigError, match="memory controller is not mounted"):
        partition.ensure_partition("p", 300 * MIB, tmp_path, proc_cgroups)


def test_ensure_creates_dirs_copies_cpuset_and_sets_the_limit(
    cgroup_root: Path,
    proc_cgroups: Path,
) -> None:
    made = partition.ensure_partition("filemem", 300 * MIB, cgroup_root, proc_cgroups)
    assert made.libvirt_path == "/machine/filemem"
    assert made.memory_limit_bytes == 300 * MIB
    for name in ("cpu,cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "unified"):
        assert (cgroup_root / name / "machine" / "filemem.partition").is_dir(), name
    for name in ("pids", "systemd"):
        assert not (cgroup_root / name / "machine").exists(), name
    cpuset = cgroup_root / "cpuset" / "machine"
    assert (cpuset / "cpuset.cpus").read_text() == "0-3"
    assert (cpuset / "filemem.partition" / "cpuset.cpus").read_text() == "0-3"
    assert (cpuset / "filemem.partition" / "cpuset.mems").read_text() == "0"
    assert made.memory_dir == cgroup_root / "memory" / "machine" / "filemem.partition"
    assert (made.memory_dir / "memory.limit_in_bytes").read_text() == str(300 * MIB)


def test_ensure_is_idempotent_keeps_cpuset_and_updates_the_limit(
    cgroup_root: Path,
    proc_cgroups: Path,
) -> None:
    first = partition.ensure_partition("filemem", 300 * MIB, cgroup_root, proc_cgroups)
    pinned = cgroup_root / "cpuset" / "machine" / "filemem.partition" / "cpuset.cpus"
    pinned.write_text("1")  # an operator's pinning is theirs
    again = partition.ensure_partition("filemem", 300 * MIB, cgroup_root, proc_cgroups)
    assert again == first
    assert pinned.read_text() == "1"
    lifted = partition.ensure_partition("filemem", None, cgroup_root, proc_cgroups)
    assert lifted.memory_limit_bytes is None
    assert (first.memory_dir / "memory.limit_in_bytes").read_text() == "-1"


def test_ensure_refuses_unsafe_names_and_zero_limits_before_touching_anything(
    cgroup_root: Path,
    proc_cgroups: Path,
) -> None:
    with pytest.raises(ConfigError, match="guest_partition"):
        partition.ensure_partition("../../etc", 300 * MIB, cgroup_root, proc_cgroups)
    with pytest.raises(ValueError, match="positive"):
        partition.ensure_partition("filemem", 0, cgroup_root, proc_cgroups)
    assert not (cgroup_root / "memory" / "machine").exists()


def test_usage_counts_child_cgroups(cgroup_root: Path, proc_cgroups: Path) -> None:
    made = partition.ensure_partition("filemem", 300 * MIB, cgroup_root, proc_cgroups)
    memory = made.memory_dir
    for name, value in (
        ("usage_in_bytes", 200 * MIB),
        ("max_usage_in_bytes", 290 * MIB),
        ("failcnt", 7),
    ):
        (memory / f"memory.{name}").write_text(f"{value}\n")
    (memory / "memory.stat").write_text(
        f"cache 0\nrss 0\ntotal_cache {150 * MIB}\ntotal_rss {50 * MIB}\n"
    )
    (memory / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
    guest = memory / "qemu-1-t.libvirt-qemu"
    guest.mkdir()
    (guest / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    usage = partition.partition_memory_usage(made)
    assert usage == partition.MemoryUsage(
        usage_bytes=200 * MIB,
        max_usage_bytes=290 * MIB,
        limit_bytes=300 * MIB,
        failcnt=7,
        cache_bytes=150 * MIB,
        rss_bytes=50 * MIB,
        oom_kills=1,
    )


def test_qemu_pids_in_walks_the_partition(
    cgroup_root: Path,
    proc_cgroups: Path,
    tmp_path: Path,
) -> None:
    made = partition.ensure_partition("filemem", None, cgroup_root, proc_cgroups)
    proc = tmp_path / "proc"
    for pid, comm in ((10, "qemu-system-x86"), (11, "sh"), (12, "qemu-system-x86")):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(f"{comm}\n")
    guest = made.memory_dir / "qemu-1-t.libvirt-qemu"
    guest.mkdir()
    (guest / "cgroup.procs").write_text("12\n11\n99\n")  # 99 exited meanwhile
    (made.memory_dir / "cgroup.procs").write_text("10\n")
    assert partition.qemu_pids_in(made, proc) == [10, 12]


def test_remove_partition(cgroup_root: Path, proc_cgroups: Path) -> None:
    made = partition.ensure_partition("filemem", None, cgroup_root, proc_cgroups)
    for directory in made.directories:  # a real cgroup's control files vanish with it
        for file in directory.iterdir():
            file.unlink()
    partition.remove_partition(made)
    assert not any(d.exists() for d in made.directories)
    assert (cgroup_root / "memory" / "machine").is_dir(), "/machine is libvirt's, it stays"
    partition.remove_partition(made)  # already gone: nothing to do


# -- options and settings -----------------------------------------------------------------------


def load(tmp_path: Path, text: str) -> cfg.ConfigOpts:
    path = tmp_path / "filemem.conf"
    path.write_text(text)
    return filemem_conf.load(config_files=[str(path)])


def test_options_default_to_no_partition_and_no_limit(tmp_path: Path) -> None:
    conf = load(tmp_path, "")
    assert (conf.libvirt.guest_partition, conf.libvirt.guest_memory_limit_mb) == ("", 0)
    settings = driver_settings(conf)
    assert (settings.guest_partition, settings.guest_memory_limit_mb) == ("", 0)


def test_options_reach_the_driver_settings(tmp_path: Path) -> None:
    conf = load(tmp_path, "[libvirt]\nguest_partition = bench\nguest_memory_limit_mb = 300\n")
    settings = driver_settings(conf)
    assert (settings.guest_partition, settings.guest_memory_limit_mb) == ("bench", 300)


@pytest.mark.parametrize(
    ("text", "option"),
    [
        ("[libvirt]\nguest_partition = ../etc\n", "[libvirt] guest_partition"),
        ("[libvirt]\nguest_partition = a/b\n", "[libvirt] guest_partition"),
        ("[libvirt]\nguest_partition = ..\n", "[libvirt] guest_partition"),
        ("[libvirt]\nguest_memory_limit_mb = -1\n", "[libvirt] guest_memory_limit_mb"),
    ],
)
def test_invalid_option_values_are_refused_naming_the_option(
    tmp_path: Path,
    text: str,
    option: str,
) -> None:
    with pytest.raises(ConfigError) as refused:
        load(tmp_path, text)
    assert option in str(refused.value)


def test_a_limit_without_a_partition_refuses_to_start_naming_both(tmp_path: Path) -> None:
    conf = load(tmp_path, "[libvirt]\nguest_memory_limit_mb = 300\n")
    with pytest.raises(ConfigError) as refused:
        driver_settings(conf)
    assert "[libvirt] guest_memory_limit_mb" in str(refused.value)
    assert "[libvirt] guest_partition" in str(refused.value)


def test_oom_kills_are_read_from_the_kernel_log_for_this_partition_only() -> None:
    part = partition.Partition(
        name="t",
        libvirt_path="/machine/t",
        directories=(),
        memory_dir=Path("/sys/fs/cgroup/memory/machine/t.partition"),
        memory_limit_bytes=None,
    )
    log = (
        "[  1.0] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,"
        "mems_allowed=0,oom_memcg=/machine/t.partition,task_memcg=/machine/t.partition/"
        "qemu-1,task=qemu-system-x86,pid=4242,uid=64055\n"
        "[  2.0] oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/machine/other.partition,"
        "task=qemu-system-x86,pid=5151,uid=64055\n"
    )
    assert partition.oom_killed_pids(log, part) == [4242]
