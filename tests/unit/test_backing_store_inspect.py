"""Unit tests for inspect_store: a store's filesystem, size, RAM bound and writability."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from filemem.backing.store import inspect_store, read_host_ram
from filemem.common.resources import MIB
from tests.unit.backing_fakes import make_sysfs


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


# Mounts a real filesystem: root, so not in `scripts/check --fast` (`-m "not root"`).
@pytest.mark.root
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


# Mounts a real filesystem: root, so not in `scripts/check --fast` (`-m "not root"`).
@pytest.mark.root
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


# Mounts a real filesystem: root, so not in `scripts/check --fast` (`-m "not root"`).
@pytest.mark.root
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
