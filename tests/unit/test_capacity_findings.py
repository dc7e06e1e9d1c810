"""Unit tests for store_findings: what a store's facts mean for the capacity it is given."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from filemem.backing.capacity import store_findings
from filemem.backing.store import StoreFacts
from filemem.common.findings import Finding, Severity
from filemem.common.guests import MemoryFileUsage
from filemem.common.resources import GIB, MIB


def make_store(**changes: Any) -> StoreFacts:
    store = StoreFacts(
        path=Path("/srv/mem/libvirt/qemu"),
        exists=True,
        mount_point=Path("/srv/mem"),
        is_mount_point=False,
        device="/dev/nvme0n1p1",
        fs_type="xfs",
        rotational=False,
        dax=False,
        size_bytes=10 * GIB,
        free_bytes=8 * GIB,
        qemu_user="libvirt-qemu",
        qemu_can_write=True,
        write_problem=None,
    )
    return dataclasses.replace(store, **changes)


def memfile(nominal_mb: int, allocated_mb: int, domain_id: int = 1) -> MemoryFileUsage:
    return MemoryFileUsage(
        path=Path(f"/srv/mem/libvirt/qemu/{domain_id}-g/pc.ram"),
        nominal_bytes=nominal_mb * MIB,
        allocated_bytes=allocated_mb * MIB,
    )


def by_code(findings: list[Finding]) -> dict[str, Finding]:
    codes = [f.code for f in findings]
    assert len(codes) == len(set(codes)), codes
    return {f.code: f for f in findings}


# --- store_findings ---------------------------------------------------------------------------


def test_healthy_store_reports_only_ok_findings() -> None:
    findings = by_code(store_findings(4096, 0, make_store(), [memfile(256, 256)]))
    assert set(findings) == {"store.location", "store.space", "store.capacity_fits"}
    assert all(f.severity is Severity.OK for f in findings.values())
    assert findings["store.location"].message == (
        "memory backing dir /srv/mem/libvirt/qemu is on /dev/nvme0n1p1 (xfs, non-rotational) "
        "mounted at /srv/mem; it shares that filesystem with everything else under /srv/mem, "
        "whose writers take from the same free room"
    )
    assert findings["store.space"].message == (
        "filesystem size 10240 MiB, free 8192 MiB; 1 guest memory file: 256 MiB nominal, "
        "256 MiB allocated"
    )
    assert findings["store.capacity_fits"].option == "[libvirt] file_backed_memory"


def test_capacity_larger_than_filesystem_is_an_error_naming_both_figures() -> None:
    findings = by_code(store_findings(20480, 0, make_store(), []))
    too_small = findings["store.too_small"]
    assert too_small.severity is Severity.ERROR
    assert too_small.option == "[libvirt] file_backed_memory"
    assert too_small.message == (
        "[libvirt] file_backed_memory is 20480 MiB but the filesystem holding "
        "/srv/mem/libvirt/qemu (/dev/nvme0n1p1, xfs) is only 10240 MiB in size"
    )
    assert "store.short_free" not in findings


def test_reserved_memory_is_not_needed_on_the_store() -> None:
    # Placement hands guests 11264 - 2048 = 9216 MiB, which a 10 GiB store holds.
    findings = by_code(store_findings(11264, 2048, make_store(free_bytes=10 * GIB), []))
    assert "store.too_small" not in findings
    assert findings["store.capacity_fits"].message.startswith(
        "[libvirt] file_backed_memory is 11264 MiB (9216 MiB for guests after "
        "[DEFAULT] reserved_host_memory_mb = 2048)"
    )


def test_short_free_room_is_a_warning_saying_how_much_is_missing() -> None:
    store = make_store(free_bytes=3 * GIB)
    guests = [memfile(1024, 512, 1), memfile(512, 512, 2)]
    findings = by_code(store_findings(8192, 0, store, guests))
    short = findings["store.short_free"]
    assert short.severity is Severity.WARNING
    # 8192 needed - (3072 free + 1024 allocated) = 4096 missing
    assert short.message.startswith("free room is short by 4096 MiB: ")
    assert "3072 MiB free + 1024 MiB held by guests' memory files = 4096 MiB" in short.message
    assert "store.capacity_fits" not in findings


def test_allocated_guest_memory_counts_as_room_for_the_configured_capacity() -> None:
    store = make_store(free_bytes=3 * GIB)
    findings = by_code(store_findings(4096, 0, store, [memfile(1024, 1024)]))
    assert findings["store.capacity_fits"].severity is Severity.OK
    assert "store.short_free" not in findings


def test_unwritable_store_is_an_error_with_the_reason() -> None:
    store = make_store(qemu_can_write=False, write_problem="the filesystem is mounted read-only")
    finding = by_code(store_findings(1024, 0, store, []))["store.not_writable"]
    assert finding.severity is Severity.ERROR
    assert finding.message == (
        "QEMU runs as 'libvirt-qemu' (qemu.conf user), which could not create its memory files "
        "under /srv/mem/libvirt/qemu: the filesystem is mounted read-only"
    )


def test_rotational_store_is_a_warning() -> None:
    store = make_store(rotational=True, device="/dev/sda1")
    findings = by_code(store_findings(1024, 0, store, []))
    assert findings["store.rotational"].severity is Severity.WARNING
    assert findings["store.rotational"].message.startswith("/dev/sda1 holding ")
    assert "rotational" in findings["store.location"].message


def test_ram_disk_without_rotational_flag_gets_no_warning() -> None:
    store = make_store(rotational=None, device="tmpfs", fs_type="tmpfs", is_mount_point=True)
    findings = by_code(store_findings(1024, 0, store, []))
    assert "store.rotational" not in findings
    assert "(tmpfs, not a block device)" in findings["store.location"].message
    assert findings["store.location"].message.endswith("it is a mount point of its own")


def test_missing_directory_is_ok_level_information() -> None:
    findings = by_code(store_findings(1024, 0, make_store(exists=False), []))
    assert findings["store.will_be_created"].severity is Severity.OK
    assert "libvirtd creates it" in findings["store.will_be_created"].message


def test_dax_is_mentioned() -> None:
    findings = by_code(store_findings(1024, 0, make_store(dax=True), []))
    assert "non-rotational, DAX)" in findings["store.location"].message


def test_file_backed_memory_off_only_describes_the_store() -> None:
    findings = by_code(store_findings(0, 0, make_store(size_bytes=0, free_bytes=0), []))
    assert set(findings) == {"store.location", "store.space", "store.unused"}
    assert all(f.severity is Severity.OK for f in findings.values())


def test_several_problems_are_all_reported() -> None:
    store = make_store(rotational=True, qemu_can_write=False, write_problem="x")
    findings = by_code(store_findings(20480, 0, store, []))
    severities = {code: f.severity for code, f in findings.items()}
    assert severities["store.too_small"] is Severity.ERROR
    assert severities["store.not_writable"] is Severity.ERROR
    assert severities["store.rotational"] is Severity.WARNING


def tmpfs_store(fs_size: int, ram_limit: int, size: int, free: int) -> StoreFacts:
    return make_store(
        path=Path("/srv/mem/libvirt/qemu"),
        device="tmpfs",
        fs_type="tmpfs",
        rotational=None,
        fs_size_bytes=fs_size,
        ram_limit_bytes=ram_limit,
        size_bytes=size,
        free_bytes=free,
    )


def test_file_backed_memory_beyond_ram_on_a_tmpfs_is_an_error_naming_the_option() -> None:
    store = tmpfs_store(100 * GIB, 10 * GIB, 10 * GIB, 10 * GIB)
    findings = by_code(store_findings(20480, 0, store, []))
    exceeds = findings["store.exceeds_ram"]
    assert exceeds.severity is Severity.ERROR
    assert exceeds.option == "[libvirt] file_backed_memory"
    assert exceeds.message == (
        "[libvirt] file_backed_memory is 20480 MiB but /srv/mem/libvirt/qemu (tmpfs, tmpfs) is "
        "RAM-backed and RAM-backed stores cannot exceed RAM: it holds at most "
        "MemTotal + SwapTotal = 10240 MiB; its size of 102400 MiB is a promise the host "
        "cannot keep"
    )
    assert "store.too_small" not in findings and "store.capacity_fits" not in findings
    assert findings["store.space"].message.startswith(
        "filesystem size 102400 MiB (RAM-backed: it holds at most 10240 MiB, "
        "MemTotal + SwapTotal being 10240 MiB), free 10240 MiB; "
    )


def test_ramfs_beyond_ram_names_memtotal() -> None:
    store = make_store(
        device="ramfs",
        fs_type="ramfs",
        rotational=None,
        fs_size_bytes=0,
        ram_limit_bytes=8 * GIB,
        size_bytes=8 * GIB,
        free_bytes=6 * GIB,
    )
    exceeds = by_code(store_findings(10240, 0, store, []))["store.exceeds_ram"]
    assert exceeds.message.endswith("it holds at most MemTotal = 8192 MiB")


def test_tmpfs_within_ram_that_fits_is_fine() -> None:
    store = tmpfs_store(100 * GIB, 10 * GIB, 10 * GIB, 10 * GIB)
    findings = by_code(store_findings(8192, 0, store, []))
    assert findings["store.capacity_fits"].severity is Severity.OK
    assert "store.exceeds_ram" not in findings


def test_tmpfs_smaller_than_ram_is_too_small_as_any_filesystem() -> None:
    store = tmpfs_store(4 * GIB, 10 * GIB, 4 * GIB, 4 * GIB)
    findings = by_code(store_findings(8192, 0, store, []))
    assert findings["store.too_small"].severity is Severity.ERROR
    assert "store.exceeds_ram" not in findings
    assert findings["store.space"].message.startswith(
        "filesystem size 4096 MiB (RAM-backed: it holds at most 4096 MiB, "
        "MemTotal + SwapTotal being 10240 MiB)"
    )


def test_store_on_the_root_filesystem_is_a_warning() -> None:
    store = make_store(mount_point=Path("/"), device="/dev/vda", on_root_fs=True)
    findings = by_code(store_findings(1024, 0, store, []))
    root = findings["store.on_root_fs"]
    assert root.severity is Severity.WARNING
    assert root.message.startswith(
        "/srv/mem/libvirt/qemu is on the root filesystem (/dev/vda): the OS, logs and packages "
        "take from the same free room"
    )
    assert findings["store.capacity_fits"].severity is Severity.OK


def test_store_whose_filesystem_is_also_mounted_elsewhere_is_a_warning() -> None:
    store = make_store(other_mounts=(Path("/home"), Path("/var/log")))
    finding = by_code(store_findings(1024, 0, store, []))["store.shared_device"]
    assert finding.severity is Severity.WARNING
    assert finding.message == (
        "/dev/nvme0n1p1 holding /srv/mem/libvirt/qemu is also mounted at /home, /var/log "
        "(other parts of the same filesystem), whose writers take from the same free room"
    )


def test_a_store_of_its_own_gets_no_sharing_warnings() -> None:
    findings = by_code(store_findings(1024, 0, make_store(is_mount_point=True), []))
    assert "store.on_root_fs" not in findings and "store.shared_device" not in findings


def test_store_facts_as_dict_is_json_ready() -> None:
    store = make_store(other_mounts=(Path("/home"),), fs_size_bytes=10 * GIB)
    facts = store.as_dict()
    assert facts["other_mounts"] == ["/home"]
    assert facts["fs_size_bytes"] == 10 * GIB
    json.dumps(facts)
