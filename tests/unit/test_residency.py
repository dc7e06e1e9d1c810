"""Working-set probes: parsers on sample text, and the real probes on this host."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from filemem.backing.residency import (
    PAGE_SIZE,
    Counters,
    FileResidency,
    HostPressure,
    Psi,
    count_resident,
    device_write_bytes,
    file_residency,
    host_memory_pressure,
    host_pressure_of,
    parse_major_faults,
    parse_psi,
    parse_status,
    parse_vmstat,
    process_memory,
    process_memory_of,
    qemu_pid,
    rates,
    sectors_written,
)
from filemem.backing.store import find_mount, parse_mountinfo

MIB = 1024 * 1024

# --- sample text ------------------------------------------------------------------------------

STATUS = """\
Name:\tqemu-system-x86
Umask:\t0077
State:\tS (sleeping)
Tgid:\t8185
VmPeak:\t 3419432 kB
VmRSS:\t  627816 kB
RssAnon:\t   79508 kB
RssFile:\t  548308 kB
RssShmem:\t       0 kB
Threads:\t5
voluntary_ctxt_switches:\t123
"""

# The command name holds a space and a ')': split after the last ')'.
STAT = (
    "8185 (qemu (x) 1) S 1 8184 8184 0 -1 4194624 150312 7 71 0 920 1411 0 0 20 0 5 0 "
    "2553611 3501498368 156954 18446744073709551615 1 1 0 0 0 0 0 4096 17475 0 0 0 17 1 0 0"
)

VMSTAT = """\
nr_free_pages 5977788
workingset_nodes 12314
workingset_refault_anon 17
workingset_refault_file 136464
workingset_activate_file 28859
pgpgin 1396689
pgmajfault 1070
"""

VMSTAT_BEFORE_5_9 = "workingset_refault 4242\npgmajfault 9\n"

PSI = """\
some avg10=0.23 avg60=0.69 avg300=0.55 total=2629432
full avg10=0.17 avg60=0.58 avg300=0.48 total=2363260
"""

# /sys/block/vda/stat: reads, merges, sectors, ms, writes, merges, sectors written, ...
DISK_STAT = "   40128     1037  2793378    21034    46339    39811  1746216    70443 0 40000 91477"


def test_parse_status_keeps_kb_lines_as_bytes() -> None:
    values = parse_status(STATUS)
    assert values["VmRSS"] == 627816 * 1024
    assert values["RssFile"] == 548308 * 1024
    assert "Threads" not in values and "Umask" not in values


def test_parse_major_faults_is_field_12_even_with_odd_command_names() -> None:
    assert parse_major_faults(STAT) == 71


def test_process_memory_of_sample_text() -> None:
    memory = process_memory_of(STATUS, STAT)
    assert memory.rss_bytes == 627816 * 1024
    assert memory.rss_anon_bytes == 79508 * 1024
    assert memory.rss_file_bytes == 548308 * 1024
    assert memory.rss_shmem_bytes == 0
    assert memory.major_faults == 71


def test_kernel_thread_has_no_user_memory() -> None:
    memory = process_memory_of("Name:\tkthreadd\nState:\tS\n", STAT)
    assert (memory.rss_bytes, memory.rss_file_bytes, memory.rss_anon_bytes) == (0, 0, 0)


def test_vmstat_and_psi_parse() -> None:
    assert parse_vmstat(VMSTAT)["pgpgin"] == 1396689
    psi = parse_psi(PSI)
    assert psi["some"] == Psi(0.23, 0.69, 0.55, 2629432)
    assert psi["full"].total_us == 2363260
    assert parse_psi("some avg10=x\nbogus\n") == {}


def test_host_pressure_of_current_kernel() -> None:
    pressure = host_pressure_of(VMSTAT, PSI)
    assert pressure.refaults_file == 136464
    assert pressure.refaults_anon == 17
    assert pressure.refaults == 136481
    assert pressure.major_faults == 1070
    assert pressure.psi_some is not None and pressure.psi_some.avg60 == 0.69
    assert pressure.psi_full is not None and pressure.psi_full.avg10 == 0.17


def test_host_pressure_of_old_kernel_without_psi() -> None:
    pressure = host_pressure_of(VMSTAT_BEFORE_5_9, None)
    assert pressure == HostPressure(refaults_file=4242, refaults_anon=None, major_faults=9)
    assert pressure.refaults == 4242


def test_sectors_written_is_field_7() -> None:
    assert sectors_written(DISK_STAT) == 1746216


def test_count_resident_reads_bit_zero_only() -> None:
    assert count_resident(bytes([0, 1, 1, 0, 3, 2])) == 3


# --- rates ------------------------------------------------------------------------------------


def test_rates_per_second() -> None:
    before = Counters(page_ins=100, refaults=1000, write_bytes=0)
    after = Counters(page_ins=150, refaults=1400, write_bytes=8 * MIB)
    result = rates(before, after, 2.0)
    assert result.page_ins_per_s == 25.0
    assert result.refaults_per_s == 200.0
    assert result.write_bytes_per_s == 4 * MIB


def test_rates_unknown_after_a_reset_or_without_a_device() -> None:
    result = rates(Counters(100, 5, None), Counters(10, 5, None), 1.0)
    assert result.page_ins_per_s is None
    assert result.refaults_per_s == 0.0
    assert result.write_bytes_per_s is None


def test_rates_need_elapsed_time() -> None:
    with pytest.raises(ValueError, match="seconds"):
        rates(Counters(0, 0, 0), Counters(0, 0, 0), 0)


# --- file residency ---------------------------------------------------------------------------


def fs_type_of(path: Path) -> str:
    mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
    mount = find_mount(mounts, path.resolve(), os.stat(path).st_dev)
    return mount.fs_type if mount else "unknown"


@pytest.fixture
def disk_dir() -> Iterator[Path]:
    """A directory on a block-device filesystem: page-cache drops and device counters need one.

    pytest's tmp_path may sit on a tmpfs; /var/tmp is on disk on every host filemem supports,
    and a host where it is not fails here, loudly, instead of skipping the test.
    """
    directory = Path(tempfile.mkdtemp(prefix="filemem-residency-", dir="/var/tmp"))
    try:
        fs_type, st = fs_type_of(directory), os.stat(directory)
        assert fs_type not in ("tmpfs", "ramfs") and os.major(st.st_dev) != 0, (
            f"/var/tmp is on {fs_type}: these tests need a filesystem on a block device"
        )
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def dev_shm() -> Path:
    """Debian mounts a tmpfs at /dev/shm; a host without one fails the test that needs it."""
    shm = Path("/dev/shm")
    assert shm.is_dir() and fs_type_of(shm) == "tmpfs", "no tmpfs at /dev/shm"
    return shm


def write_synced(path: Path, size: int) -> None:
    with path.open("wb") as f:
        f.write(os.urandom(size))
        f.flush()
        os.fsync(f.fileno())


def drop_from_page_cache(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_written_file_is_resident_and_allocated(tmp_path: Path) -> None:
    path = tmp_path / "pc.ram"
    write_synced(path, 4 * MIB)
    residency = file_residency(path)
    assert residency is not None
    assert residency.nominal_bytes == 4 * MIB
    assert residency.allocated_bytes >= 4 * MIB
    assert 0 < residency.resident_bytes <= 4 * MIB
    assert residency.resident_bytes % PAGE_SIZE == 0


def test_dropped_clean_file_reads_as_not_resident_and_the_probe_faults_nothing_in(
    disk_dir: Path,
) -> None:
    # On a disk filesystem: a RAM filesystem keeps its pages whatever fadvise says.
    path = disk_dir / "pc.ram"
    write_synced(path, 4 * MIB)
    drop_from_page_cache(path)
    assert file_residency(path) == FileResidency(4 * MIB, os.stat(path).st_blocks * 512, 0)
    assert file_residency(path) == FileResidency(4 * MIB, os.stat(path).st_blocks * 512, 0)


def test_sparse_file_has_nothing_allocated_or_resident(tmp_path: Path) -> None:
    path = tmp_path / "sparse.ram"
    with path.open("wb") as f:
        f.truncate(64 * MIB)
    drop_from_page_cache(path)
    residency = file_residency(path)
    assert residency == FileResidency(64 * MIB, 0, 0)


def test_partly_touched_sparse_file(tmp_path: Path) -> None:
    path = tmp_path / "pc.ram"
    with path.open("wb") as f:
        f.truncate(16 * MIB)
        f.seek(8 * MIB)
        f.write(b"\x5a" * MIB)
    residency = file_residency(path)
    assert residency is not None
    assert residency.resident_bytes == MIB
    assert MIB <= residency.allocated_bytes < 16 * MIB


def test_empty_and_vanished_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.touch()
    assert file_residency(empty) == FileResidency(0, 0, 0)
    assert file_residency(tmp_path / "gone") is None


def test_links_and_directories_are_refused(tmp_path: Path) -> None:
    write_synced(tmp_path / "real", PAGE_SIZE)
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(OSError):
        file_residency(tmp_path / "link")
    with pytest.raises(OSError):
        file_residency(tmp_path)


# --- processes and the host -------------------------------------------------------------------


def test_process_memory_of_this_process() -> None:
    memory = process_memory(os.getpid())
    assert memory is not None
    assert memory.rss_bytes > 0
    assert memory.rss_anon_bytes > 0
    # RssFile + RssAnon + RssShmem is VmRSS, up to the kernel's per-CPU counter slack.
    parts = memory.rss_file_bytes + memory.rss_anon_bytes + memory.rss_shmem_bytes
    assert abs(parts - memory.rss_bytes) <= 8 * MIB
    assert memory.major_faults >= 0


def test_process_memory_of_a_process_that_is_gone(tmp_path: Path) -> None:
    assert process_memory(4242, proc=tmp_path) is None


def test_qemu_pid_reads_libvirts_pid_file(tmp_path: Path) -> None:
    (tmp_path / "guest-1.pid").write_text(f"{os.getpid()}\n")
    (tmp_path / "stale.pid").write_text("4194304")  # above the default pid_max
    (tmp_path / "junk.pid").write_text("not a pid")
    assert qemu_pid("guest-1", tmp_path) == os.getpid()
    assert qemu_pid("stale", tmp_path) is None
    assert qemu_pid("junk", tmp_path) is None
    assert qemu_pid("absent", tmp_path) is None
    with pytest.raises(ValueError):
        qemu_pid("../etc/passwd", tmp_path)


def test_host_memory_pressure_matches_what_this_kernel_offers() -> None:
    pressure = host_memory_pressure()
    vmstat = parse_vmstat(Path("/proc/vmstat").read_text())
    assert pressure.major_faults >= 0
    assert (pressure.refaults_anon is None) == ("workingset_refault_anon" not in vmstat)
    has_psi = Path("/proc/pressure/memory").exists()
    assert (pressure.psi_some is not None) == has_psi
    assert (pressure.psi_full is not None) == has_psi


def test_device_write_bytes_of_the_root_filesystem() -> None:
    written = device_write_bytes(Path("/"))
    st = os.stat("/")
    stat_file = Path(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/stat")
    if os.major(st.st_dev) != 0:
        assert (written is not None) == stat_file.exists()
    if written is not None:
        assert written >= 0 and written % 512 == 0


def test_device_write_bytes_of_a_partition_from_fake_sysfs(tmp_path: Path, disk_dir: Path) -> None:
    st = os.stat(disk_dir)
    sysfs = tmp_path / "sys"
    partition = sysfs / "devices" / "block" / "sda" / "sda1"
    partition.mkdir(parents=True)
    (partition / "stat").write_text(DISK_STAT)
    (sysfs / "dev" / "block").mkdir(parents=True)
    (sysfs / "dev" / "block" / f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}").symlink_to(partition)
    assert device_write_bytes(disk_dir, sysfs=sysfs) == 1746216 * 512


def test_ram_filesystems_have_no_device_writes() -> None:
    shm = dev_shm()
    assert device_write_bytes(shm) is None
    assert device_write_bytes(Path("/proc/self")) is None


def test_tmpfs_file_is_resident() -> None:
    shm = dev_shm()
    path = shm / f"filemem-residency-{os.getpid()}"
    try:
        write_synced(path, MIB)
        residency = file_residency(path)
        assert residency is not None and residency.resident_bytes == MIB
    finally:
        path.unlink(missing_ok=True)


def probe_as_nobody(path: Path) -> str:
    """file_residency(path) in a forked child running as nobody: the error it raised, or ""."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, never return into pytest
        try:
            os.setgroups([])
            os.setresgid(65534, 65534, 65534)
            os.setresuid(65534, 65534, 65534)
            file_residency(path)
            message = ""
        except BaseException as exc:
            message = f"{type(exc).__name__}: {exc}"
        os.write(write_end, message.encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        message = reader.read().decode()
    os.waitpid(pid, 0)
    return message


# Runs the probe as another user: root, so not in `scripts/check --fast` (`-m "not root"`).
@pytest.mark.root
def test_a_caller_who_may_not_write_the_file_is_told_not_shown_zero() -> None:
    assert os.geteuid() == 0, "this test runs the probe as nobody: run it as root"
    with tempfile.TemporaryDirectory() as directory:
        Path(directory).chmod(0o755)  # pytest's tmp_path is private to root
        path = Path(directory) / "pc.ram"
        write_synced(path, MIB)
        path.chmod(0o644)
        message = probe_as_nobody(path)
        path.chmod(0o666)
        allowed = probe_as_nobody(path)
    assert message.startswith("PermissionError: "), message
    assert "owner, root or a writer" in message
    assert allowed == ""
