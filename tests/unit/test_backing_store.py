"""Backing store I/O: qemu.conf, mounts and sysfs, store inspection and guests' memory files."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from filemem.backing.store import (
    DEFAULT_MEMORY_BACKING_DIR,
    all_memory_files,
    block_device_flags,
    dac_allows,
    effective_memory_backing_dir,
    find_mount,
    guest_memory_dir,
    guest_memory_file,
    inspect_store,
    other_mounts,
    parse_meminfo,
    parse_mountinfo,
    qemu_user,
    read_host_ram,
    read_qemu_conf,
    resolve_user,
)

MIB = 1024 * 1024

# --- qemu.conf --------------------------------------------------------------------------------


def test_absent_setting_means_libvirts_default_dir() -> None:
    assert effective_memory_backing_dir("") == Path("/var/lib/libvirt/qemu/ram")
    assert effective_memory_backing_dir("") == DEFAULT_MEMORY_BACKING_DIR


def test_commented_setting_is_ignored() -> None:
    text = '# memory_backing_dir = "/srv/mem"\n  #memory_backing_dir="/x"\n'
    assert effective_memory_backing_dir(text) == Path("/var/lib/libvirt/qemu/ram")


def test_custom_dir_gets_libvirt_qemu_appended() -> None:
    assert effective_memory_backing_dir('memory_backing_dir = "/srv/mem"') == Path(
        "/srv/mem/libvirt/qemu"
    )


@pytest.mark.parametrize(
    "line",
    [
        'memory_backing_dir="/srv/mem"',
        '   memory_backing_dir   =   "/srv/mem"   ',
        "memory_backing_dir = '/srv/mem'",
        'memory_backing_dir = "/srv/mem"  # fast NVMe',
        'memory_backing_dir = "/srv/mem/"',
        'memory_backing_dir = "/srv/mem"\t',
    ],
)
def test_spacing_quotes_and_trailing_comments(line: str) -> None:
    text = f'# qemu.conf\nuser = "libvirt-qemu"\n{line}\nsecurity_driver = "none"\n'
    assert effective_memory_backing_dir(text) == Path("/srv/mem/libvirt/qemu")


def test_first_setting_wins_like_virconf() -> None:
    text = 'memory_backing_dir = "/first"\nmemory_backing_dir = "/second"\n'
    assert effective_memory_backing_dir(text) == Path("/first/libvirt/qemu")


def test_similar_keys_and_lists_do_not_match() -> None:
    text = (
        'my_memory_backing_dir = "/nope"\n'
        'cgroup_device_acl = [\n    "/dev/null", "/dev/full",\n]\n'
        'hugetlbfs_mount = ["/dev/hugepages"]\n'
    )
    assert effective_memory_backing_dir(text) == Path("/var/lib/libvirt/qemu/ram")


def test_relative_dir_is_anchored_at_root_like_libvirtd() -> None:
    assert effective_memory_backing_dir('memory_backing_dir = "mem"') == Path("/mem/libvirt/qemu")


def test_qemu_user_default_name_and_numeric() -> None:
    assert qemu_user("") == "libvirt-qemu"
    assert qemu_user('#user = "root"\n') == "libvirt-qemu"
    assert qemu_user('user = "qemu"\ngroup = "kvm"\n') == "qemu"
    assert qemu_user('user = "+0"') == "+0"
    assert qemu_user('dynamic_ownership_user = "x"\n') == "libvirt-qemu"


def test_read_qemu_conf(tmp_path: Path) -> None:
    assert read_qemu_conf(tmp_path / "missing.conf") == ""
    conf = tmp_path / "qemu.conf"
    conf.write_text('memory_backing_dir = "/srv/mem"\n', encoding="utf-8")
    assert effective_memory_backing_dir(read_qemu_conf(conf)) == Path("/srv/mem/libvirt/qemu")


# --- mountinfo and sysfs ----------------------------------------------------------------------

MOUNTINFO = """\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard
40 27 0:45 / /srv/mem rw,nosuid - tmpfs tmpfs rw,size=1048576k
41 27 259:1 / /mnt/pmem rw,relatime shared:5 - ext4 /dev/pmem0 rw,dax=always
42 27 8:1 / /mnt/my\\040disk ro,relatime - xfs /dev/sda1 ro,attr2
43 27 7:0 / /srv/mem rw - ext4 /dev/loop0 rw
garbage line
"""


def test_parse_mountinfo_fields_options_and_escapes() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    assert [m.mount_point for m in mounts] == [
        Path("/"),
        Path("/srv/mem"),
        Path("/mnt/pmem"),
        Path("/mnt/my disk"),
        Path("/srv/mem"),
    ]
    root, tmpfs, pmem, disk, _ = mounts
    assert (root.major, root.minor, root.fs_type, root.source) == (254, 0, "ext4", "/dev/vda")
    assert (tmpfs.major, tmpfs.fs_type, tmpfs.source) == (0, "tmpfs", "tmpfs")
    assert "dax=always" in pmem.options  # optional fields ("shared:5") skipped
    assert pmem.fs_type == "ext4"
    assert "ro" in disk.options


def test_find_mount_prefers_longest_prefix_with_matching_device() -> None:
    mounts = parse_mountinfo(MOUNTINFO)
    vda = os.makedev(254, 0)
    found = find_mount(mounts, Path("/var/lib/libvirt/qemu/ram"), vda)
    assert found is not None and found.mount_point == Path("/")
    # Two mounts stacked on /srv/mem: the device decides, then the later entry.
    loop = find_mount(mounts, Path("/srv/mem/libvirt/qemu"), os.makedev(7, 0))
    assert loop is not None and loop.source == "/dev/loop0"
    hidden = find_mount(mounts, Path("/srv/mem"), os.makedev(0, 45))
    assert hidden is not None and hidden.fs_type == "tmpfs"
    # /srv/memory is not under /srv/mem.
    other = find_mount(mounts, Path("/srv/memory"), vda)
    assert other is not None and other.mount_point == Path("/")


def test_parse_mountinfo_records_the_mount_root() -> None:
    text = (
        "27 1 254:0 / / rw - ext4 /dev/vda rw\n"
        "50 27 254:0 /srv/my\\040home /home rw - ext4 /dev/vda rw\n"
    )
    root, home = parse_mountinfo(text)
    assert root.root == "/"
    assert home.root == "/srv/my home"


SHARED = """\
27 1 254:0 / / rw - ext4 /dev/vda rw
60 27 259:1 / /srv/mem rw - xfs /dev/nvme0n1p1 rw
61 27 259:1 / /var/lib/libvirt/qemu/ram rw - xfs /dev/nvme0n1p1 rw
62 27 259:1 /home /home rw - xfs /dev/nvme0n1p1 rw
63 27 259:1 /logs /var/log rw - xfs /dev/nvme0n1p1 rw
64 27 259:1 /home /mnt/home-again rw - xfs /dev/nvme0n1p1 rw
65 27 0:60 / /srv/fast rw - tmpfs tmpfs rw
"""


def test_other_mounts_are_other_roots_of_the_same_device() -> None:
    mounts = parse_mountinfo(SHARED)
    by_point = {m.mount_point: m for m in mounts}
    assert other_mounts(mounts, by_point[Path("/srv/mem")]) == (
        Path("/home"),
        Path("/var/log"),
        Path("/mnt/home-again"),
    )
    # The same root mounted twice is one place seen twice.
    assert Path("/var/lib/libvirt/qemu/ram") not in other_mounts(mounts, by_point[Path("/srv/mem")])
    assert other_mounts(mounts, by_point[Path("/home")]) == (
        Path("/srv/mem"),
        Path("/var/lib/libvirt/qemu/ram"),
        Path("/var/log"),
    )
    assert other_mounts(mounts, by_point[Path("/srv/fast")]) == ()
    assert other_mounts(mounts, by_point[Path("/")]) == ()


MEMINFO_TEXT = """\
MemTotal:        8388608 kB
MemFree:         1048576 kB
MemAvailable:    6291456 kB
SwapTotal:       2097152 kB
SwapFree:        1572864 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
"""


def test_parse_meminfo_scales_kb_and_keeps_counts() -> None:
    values = parse_meminfo(MEMINFO_TEXT)
    assert values["MemTotal"] == 8 * 1024 * MIB
    assert values["SwapFree"] == 1536 * MIB
    assert values["HugePages_Total"] == 0


def test_read_host_ram(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text(MEMINFO_TEXT)
    ram = read_host_ram(meminfo)
    assert ram is not None
    assert (ram.mem_total_bytes, ram.mem_available_bytes) == (8192 * MIB, 6144 * MIB)
    assert (ram.swap_total_bytes, ram.swap_free_bytes) == (2048 * MIB, 1536 * MIB)
    assert read_host_ram(tmp_path / "missing") is None
    old = tmp_path / "old"
    old.write_text("MemTotal: 1024 kB\nMemFree: 512 kB\n")  # before MemAvailable (3.14)
    ram = read_host_ram(old)
    assert ram is not None and ram.mem_available_bytes == 512 * 1024
    assert ram.swap_total_bytes == 0


def test_this_hosts_ram_agrees_with_sysconf() -> None:
    ram = read_host_ram()
    assert ram is not None
    pages = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert ram.mem_total_bytes == pages


def make_sysfs(tmp_path: Path) -> Path:
    """A fake /sys: sda (rotational) with partition sda1, nvme0n1 (dax), tmpfs nothing."""
    sysfs = tmp_path / "sys"
    devices = sysfs / "devices" / "pci0000:00"
    sda = devices / "block" / "sda"
    nvme = devices / "block" / "nvme0n1"
    for disk, rotational, dax in ((sda, "1", "0"), (nvme, "0", "1")):
        (disk / "queue").mkdir(parents=True)
        (disk / "queue" / "rotational").write_text(f"{rotational}\n")
        (disk / "queue" / "dax").write_text(f"{dax}\n")
    (sda / "sda1").mkdir()
    (sda / "sda1" / "partition").write_text("1\n")
    links = sysfs / "dev" / "block"
    links.mkdir(parents=True)
    (links / "8:0").symlink_to(sda)
    (links / "8:1").symlink_to(sda / "sda1")
    (links / "259:0").symlink_to(nvme)
    return sysfs


def test_block_device_flags_walk_from_partition_to_disk(tmp_path: Path) -> None:
    sysfs = make_sysfs(tmp_path)
    assert block_device_flags(8, 1, sysfs) == (True, False)
    assert block_device_flags(8, 0, sysfs) == (True, False)
    assert block_device_flags(259, 0, sysfs) == (False, True)
    assert block_device_flags(9, 9, sysfs) == (None, False)


def test_block_device_flags_of_this_hosts_root_agree_with_sysfs() -> None:
    st = os.stat("/")
    node = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}").resolve()
    # a partition has no queue/ of its own: its disk (the parent directory) has
    queue = next(q for q in (node / "queue", node.parent / "queue") if q.exists())
    expected = (queue / "rotational").read_text().strip() == "1"
    assert block_device_flags(os.major(st.st_dev), os.minor(st.st_dev))[0] is expected


# --- permissions ------------------------------------------------------------------------------


def fake_stat(mode: int, uid: int, gid: int) -> os.stat_result:
    return os.stat_result((mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))


def test_dac_owner_class_decides_alone() -> None:
    st = fake_stat(0o40070, 1000, 2000)  # owner: ---, group: rwx
    assert not dac_allows(st, 1000, frozenset({2000}), 0o1)
    assert dac_allows(st, 1001, frozenset({2000}), 0o3)
    assert not dac_allows(st, 1001, frozenset({3000}), 0o1)


def test_dac_other_bits_and_root() -> None:
    st = fake_stat(0o40701, 1000, 1000)
    assert dac_allows(st, 5, frozenset(), 0o1)
    assert not dac_allows(st, 5, frozenset(), 0o3)
    assert dac_allows(fake_stat(0o40000, 1000, 1000), 0, frozenset(), 0o7)


def test_resolve_user_names_numbers_and_unknown() -> None:
    root = resolve_user("root")
    assert root is not None and root[0] == 0 and 0 in root[1]
    plus_zero = resolve_user("+0")
    assert plus_zero is not None and plus_zero[0] == 0
    assert resolve_user("+4000000001") == (4000000001, frozenset())
    assert resolve_user("no-such-user-filemem") is None
    assert resolve_user("+abc") is None


# --- inspect_store ----------------------------------------------------------------------------


def findmnt(column: str, path: Path) -> str:
    assert shutil.which("findmnt"), "findmnt (util-linux, installed by scripts/install) missing"
    result = subprocess.run(
        ["findmnt", "-n", "-o", column, "--target", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    # Stacked mounts list every layer; the last one is the one a path resolves to.
    return result.stdout.strip().splitlines()[-1].strip()


def df_bytes(column: str, path: Path) -> int:
    result = subprocess.run(
        ["df", "-B1", f"--output={column}", str(path)], capture_output=True, text=True, check=True
    )
    return int(result.stdout.split()[-1])


def current_user() -> str:
    return f"+{os.getuid()}"


def test_inspect_existing_dir_agrees_with_findmnt_and_df(tmp_path: Path) -> None:
    facts = inspect_store(tmp_path, current_user())
    assert facts.exists and facts.path == tmp_path
    assert facts.size_bytes > 0
    assert 0 <= facts.free_bytes <= facts.size_bytes
    assert facts.fs_type == findmnt("FSTYPE", tmp_path)
    assert facts.mount_point == Path(findmnt("TARGET", tmp_path))
    assert facts.is_mount_point == (facts.mount_point == tmp_path)
    assert facts.size_bytes == df_bytes("size", tmp_path)
    assert abs(facts.free_bytes - df_bytes("avail", tmp_path)) < 64 * MIB
    assert facts.qemu_can_write and facts.write_problem is None
    assert facts.as_dict()["path"] == str(tmp_path)
    assert facts.as_dict()["mount_point"] == str(facts.mount_point)


def test_missing_dir_is_inspected_through_its_nearest_parent(tmp_path: Path) -> None:
    wanted = tmp_path / "srv" / "libvirt" / "qemu"
    facts = inspect_store(wanted, current_user())
    assert not facts.exists
    assert facts.path == wanted
    assert not facts.is_mount_point
    assert facts.fs_type == findmnt("FSTYPE", tmp_path)
    assert facts.size_bytes == df_bytes("size", tmp_path)


# Mounts a real filesystem: root, so not in the unit suite (`-m "not functional"`).
@pytest.mark.functional
def test_tmpfs_store_has_no_rotational_flag(tmp_path: Path) -> None:
    shm = tmp_path / "shm"
    shm.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(shm)], check=True)
    try:
        facts = inspect_store(shm, current_user())
    finally:
        subprocess.run(["umount", str(shm)], check=True)
    assert facts.fs_type == "tmpfs"
    assert facts.rotational is None
    assert facts.is_mount_point
    assert not facts.on_root_fs
    assert facts.other_mounts == ()
    # Smaller than RAM: the filesystem's own figures stand.
    assert facts.size_bytes == facts.fs_size_bytes == 8 * MIB
    host = read_host_ram()
    assert host is not None
    assert facts.ram_limit_bytes == host.mem_total_bytes + host.swap_total_bytes


def mounted(tmp_path: Path, fs_type: str, options: str) -> Path:
    target = tmp_path / fs_type
    target.mkdir()
    subprocess.run(["mount", "-t", fs_type, "-o", options, fs_type, str(target)], check=True)
    return target


# Mounts a real filesystem: root, so not in the unit suite (`-m "not functional"`).
@pytest.mark.functional
def test_real_tmpfs_bigger_than_ram_and_swap_is_cut_down_to_them(tmp_path: Path) -> None:
    host = read_host_ram()
    assert host is not None
    limit = host.mem_total_bytes + host.swap_total_bytes
    target = mounted(tmp_path, "tmpfs", f"size={2 * limit}")
    try:
        (target / "used").write_bytes(b"\0" * MIB)
        facts = inspect_store(target, current_user())
    finally:
        subprocess.run(["umount", str(target)], check=True)
    assert facts.fs_size_bytes == 2 * limit
    assert facts.ram_limit_bytes == limit
    assert facts.size_bytes == limit
    assert facts.free_bytes == limit - MIB


# Mounts a real filesystem: root, so not in the unit suite (`-m "not functional"`).
@pytest.mark.functional
def test_real_ramfs_is_bounded_by_ram_alone(tmp_path: Path) -> None:
    target = mounted(tmp_path, "ramfs", "mode=0755")
    try:
        facts = inspect_store(target, current_user())
        host = read_host_ram()
    finally:
        subprocess.run(["umount", str(target)], check=True)
    assert host is not None
    assert facts.fs_type == "ramfs"
    assert facts.fs_size_bytes == 0  # ramfs has no size of its own
    assert facts.size_bytes == facts.ram_limit_bytes == host.mem_total_bytes
    assert 0 < facts.free_bytes <= host.mem_total_bytes


def test_ram_backed_store_from_fake_mountinfo_and_meminfo(tmp_path: Path) -> None:
    st = os.stat(tmp_path)
    fake = tmp_path / "mountinfo"
    fake.write_text(
        f"1 0 {os.major(st.st_dev)}:{os.minor(st.st_dev)} / {tmp_path} rw - tmpfs tmpfs rw\n",
        encoding="utf-8",
    )
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 1024 kB\nMemAvailable: 512 kB\nSwapTotal: 1024 kB\n")
    facts = inspect_store(tmp_path, current_user(), mountinfo=fake, meminfo=meminfo)
    assert facts.fs_type == "tmpfs"
    assert facts.fs_size_bytes == df_bytes("size", tmp_path)
    assert facts.ram_limit_bytes == 2 * MIB
    assert facts.size_bytes == min(2 * MIB, df_bytes("size", tmp_path))


def test_disk_store_reads_no_ram(tmp_path: Path) -> None:
    facts = inspect_store(tmp_path, current_user(), meminfo=tmp_path / "no-meminfo")
    if facts.fs_type not in ("tmpfs", "ramfs"):
        assert facts.ram_limit_bytes is None
        assert facts.size_bytes == facts.fs_size_bytes


def test_root_filesystem_is_recognised(tmp_path: Path) -> None:
    facts = inspect_store(tmp_path, current_user())
    same_device = os.stat(tmp_path).st_dev == os.stat("/").st_dev
    assert facts.on_root_fs == (same_device or facts.mount_point == Path("/"))
    assert inspect_store(Path("/"), current_user()).on_root_fs
    # Seen from another "root", the same directory is not on it.
    other = inspect_store(tmp_path, current_user(), root=Path("/proc"))
    assert not other.on_root_fs


def test_shared_device_from_fake_mountinfo(tmp_path: Path) -> None:
    st = os.stat(tmp_path)
    dev = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"
    fake = tmp_path / "mountinfo"
    fake.write_text(
        f"1 0 {dev} /store {tmp_path} rw - xfs /nonexistent/nvme0n1p1 rw\n"
        f"2 0 {dev} /home /home rw - xfs /nonexistent/nvme0n1p1 rw\n"
        f"3 0 {dev} /store /mnt/again rw - xfs /nonexistent/nvme0n1p1 rw\n",
        encoding="utf-8",
    )
    facts = inspect_store(tmp_path, current_user(), mountinfo=fake, sysfs=tmp_path / "nosys")
    assert facts.other_mounts == (Path("/home"),)
    assert facts.as_dict()["other_mounts"] == ["/home"]


def test_user_who_cannot_enter_a_parent_cannot_write(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    (locked / "mem").mkdir(parents=True)
    locked.chmod(0o700)
    stranger = os.getuid() + 4242 if os.getuid() != 0 else 4242
    facts = inspect_store(locked / "mem", f"+{stranger}")
    assert not facts.qemu_can_write
    assert facts.write_problem is not None
    assert "may not enter" in facts.write_problem
    locked.chmod(0o755)


def test_unknown_user_cannot_write(tmp_path: Path) -> None:
    facts = inspect_store(tmp_path, "no-such-user-filemem")
    assert not facts.qemu_can_write
    assert facts.write_problem == "user 'no-such-user-filemem' does not exist on this host"


def test_read_only_mount_and_dax_from_fake_mountinfo(tmp_path: Path) -> None:
    st = os.stat(tmp_path)
    fake = tmp_path / "mountinfo"
    fake.write_text(
        f"1 0 {os.major(st.st_dev)}:{os.minor(st.st_dev)} / {tmp_path} ro,relatime - "
        "ext4 /nonexistent/pmem0 ro,dax=always\n",
        encoding="utf-8",
    )
    facts = inspect_store(tmp_path, current_user(), mountinfo=fake, sysfs=tmp_path / "nosys")
    assert facts.device == "/nonexistent/pmem0"
    assert facts.is_mount_point
    assert facts.dax
    assert facts.rotational is None
    assert not facts.qemu_can_write
    assert facts.write_problem == "the filesystem is mounted read-only"


def test_rotational_disk_from_fake_sysfs(tmp_path: Path) -> None:
    fake = tmp_path / "mountinfo"
    fake.write_text(f"1 0 8:1 / {tmp_path} rw - xfs /nonexistent/sda1 rw\n", encoding="utf-8")
    facts = inspect_store(tmp_path, current_user(), mountinfo=fake, sysfs=make_sysfs(tmp_path))
    assert facts.fs_type == "xfs"
    assert facts.rotational is True
    assert not facts.dax


# --- guests' memory files ---------------------------------------------------------------------


def make_memory_file(directory: Path, name: str = "pc.ram") -> Path:
    """A 64 MiB sparse file with its first 1 MiB written, like a guest that touched 1 MiB."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    with path.open("wb") as f:
        f.truncate(64 * MIB)
        f.write(b"\xa5" * MIB)
        f.flush()
        os.fsync(f.fileno())
    return path


def test_sparse_memory_file_nominal_and_allocated(tmp_path: Path) -> None:
    backing = tmp_path / "ram"
    ram = make_memory_file(backing / "3-instance-00000003")
    assert guest_memory_dir(backing, 3) == backing / "3-instance-00000003"
    usage = guest_memory_file(backing, 3)
    assert usage is not None
    assert usage.path == ram
    assert usage.nominal_bytes == 64 * MIB
    assert MIB <= usage.allocated_bytes < 2 * MIB
    assert usage.allocated_bytes == os.stat(ram).st_blocks * 512


def test_domain_ids_match_whole_numbers_only(tmp_path: Path) -> None:
    backing = tmp_path / "ram"
    make_memory_file(backing / "12-guest")
    assert guest_memory_dir(backing, 1) is None
    assert guest_memory_file(backing, 2) is None
    assert guest_memory_dir(backing, 12) == backing / "12-guest"


def test_missing_backing_dir_and_empty_domain_dir(tmp_path: Path) -> None:
    assert guest_memory_dir(tmp_path / "nope", 1) is None
    assert all_memory_files(tmp_path / "nope") == {}
    (tmp_path / "ram" / "4-starting").mkdir(parents=True)
    assert guest_memory_file(tmp_path / "ram", 4) is None
    assert all_memory_files(tmp_path / "ram") == {}


def test_all_memory_files_keyed_by_domain_id(tmp_path: Path) -> None:
    backing = tmp_path / "ram"
    make_memory_file(backing / "1-a")
    make_memory_file(backing / "7-b")
    (backing / "notes-7").mkdir()
    (backing / "stray.txt").write_text("x")
    usages = all_memory_files(backing)
    assert sorted(usages) == [1, 7]
    assert usages[7].path == backing / "7-b" / "pc.ram"
    assert usages[7].nominal_bytes == 64 * MIB


def test_numa_guest_files_are_summed_under_the_dir(tmp_path: Path) -> None:
    domain = tmp_path / "ram" / "2-numa"
    make_memory_file(domain, "ram-node0")
    make_memory_file(domain, "ram-node1")
    os.link(domain / "ram-node1", domain / "hardlink")  # same blocks, counted once
    usage = guest_memory_file(tmp_path / "ram", 2)
    assert usage is not None
    assert usage.path == domain
    assert usage.nominal_bytes == 128 * MIB
    assert 2 * MIB <= usage.allocated_bytes < 4 * MIB


def test_symlinks_never_lead_outside_the_backing_dir(tmp_path: Path) -> None:
    backing = tmp_path / "ram"
    outside = tmp_path / "elsewhere"
    make_memory_file(outside / "dir")
    backing.mkdir()
    (backing / "5-evil").symlink_to(outside / "dir")
    make_memory_file(backing / "6-ok")
    (backing / "6-ok" / "escape.ram").symlink_to(outside / "dir" / "pc.ram")
    (backing / "8-only-link").mkdir()
    (backing / "8-only-link" / "pc.ram").symlink_to(outside / "dir" / "pc.ram")

    assert guest_memory_dir(backing, 5) is None
    assert guest_memory_file(backing, 5) is None
    assert guest_memory_file(backing, 8) is None
    usage = guest_memory_file(backing, 6)
    assert usage is not None and usage.path == backing / "6-ok" / "pc.ram"
    assert usage.nominal_bytes == 64 * MIB
    assert sorted(all_memory_files(backing)) == [6]


def test_backing_dir_reached_through_a_symlink_still_works(tmp_path: Path) -> None:
    real = tmp_path / "real"
    make_memory_file(real / "9-g")
    (tmp_path / "link").symlink_to(real)
    usage = guest_memory_file(tmp_path / "link", 9)
    assert usage is not None and usage.nominal_bytes == 64 * MIB
