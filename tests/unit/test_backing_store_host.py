"""Unit tests for reading the host: qemu.conf, mountinfo, meminfo, sysfs and DAC permissions."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from filemem.backing.store import (
    DEFAULT_MEMORY_BACKING_DIR,
    block_device_flags,
    dac_allows,
    effective_memory_backing_dir,
    find_mount,
    other_mounts,
    parse_meminfo,
    parse_mountinfo,
    qemu_user,
    read_host_ram,
    read_qemu_conf,
    resolve_user,
)
from filemem.common.resources import MIB
from tests.unit.backing_fakes import make_sysfs

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
