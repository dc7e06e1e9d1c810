"""Unit tests for capacity math: RAM-bound stores, room for a guest, the fit check, capacity."""

from __future__ import annotations

from pathlib import Path

import pytest

from filemem.backing.capacity import (
    StoreRoom,
    check_guest_fits,
    effective_capacity_mb,
    format_mib,
    promised_bytes,
    ram_limit_of,
    room_for_new_guest,
    store_room,
    usable_size_bytes,
)
from filemem.common.resources import GIB, MIB
from filemem.exceptions import InsufficientBackingStore
from tests.unit.capacity_fakes import RAM

# --- format_mib -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("n_bytes", "text"),
    [
        (0, "0 MiB"),
        (MIB, "1 MiB"),
        (256 * MIB, "256 MiB"),
        (MIB + MIB // 2, "1.50 MiB"),
        (MIB + 1, "1.00 MiB"),  # truncated, never rounded up
        (2 * MIB - 1, "1.99 MiB"),
        (4096, "4096 bytes"),
        (-16 * MIB, "-16 MiB"),
    ],
)
def test_format_mib(n_bytes: int, text: str) -> None:
    assert format_mib(n_bytes) == text


# --- RAM-backed stores ------------------------------------------------------------------------


def test_ram_limit_is_ram_plus_swap_for_tmpfs_and_ram_for_ramfs() -> None:
    assert ram_limit_of("tmpfs", RAM) == 10 * GIB
    assert ram_limit_of("ramfs", RAM) == 8 * GIB
    assert ram_limit_of("xfs", RAM) is None
    assert ram_limit_of("ext4", RAM) is None


def test_usable_size_is_the_smaller_and_a_size_of_zero_means_no_limit_of_its_own() -> None:
    assert usable_size_bytes(100 * GIB, 10 * GIB) == 10 * GIB
    assert usable_size_bytes(4 * GIB, 10 * GIB) == 4 * GIB
    assert usable_size_bytes(0, 8 * GIB) == 8 * GIB
    assert usable_size_bytes(100 * GIB, None) == 100 * GIB
    assert usable_size_bytes(0, None) == 0


def test_disk_filesystems_keep_their_own_figures() -> None:
    assert store_room("xfs", 100 * GIB, 40 * GIB, RAM) == StoreRoom(100 * GIB, 40 * GIB)
    assert store_room("tmpfs", 100 * GIB, 40 * GIB, None) == StoreRoom(100 * GIB, 40 * GIB)


def test_tmpfs_bigger_than_ram_and_swap_holds_only_ram_and_swap() -> None:
    # size=100G with 3 GiB used: 97 GiB free by statvfs, 10 - 3 = 7 GiB in truth.
    room = store_room("tmpfs", 100 * GIB, 97 * GIB, RAM)
    assert room == StoreRoom(10 * GIB, 7 * GIB, 10 * GIB)


def test_tmpfs_smaller_than_ram_keeps_its_own_figures_and_records_the_limit() -> None:
    assert store_room("tmpfs", 4 * GIB, 3 * GIB, RAM) == StoreRoom(4 * GIB, 3 * GIB, 10 * GIB)


def test_tmpfs_already_holding_more_than_ram_has_no_room_left() -> None:
    assert store_room("tmpfs", 100 * GIB, 88 * GIB, RAM).free_bytes == 0


def test_ramfs_reports_no_size_so_ram_bounds_it_and_what_is_available_is_free() -> None:
    assert store_room("ramfs", 0, 0, RAM) == StoreRoom(8 * GIB, 6 * GIB, 8 * GIB)


def test_unlimited_tmpfs_counts_free_swap_too() -> None:
    assert store_room("tmpfs", 0, 0, RAM) == StoreRoom(10 * GIB, 7680 * MIB, 10 * GIB)


def test_store_room_rejects_negative_figures() -> None:
    with pytest.raises(ValueError, match="fs_free_bytes"):
        store_room("tmpfs", GIB, -1, RAM)


# --- room_for_new_guest -----------------------------------------------------------------------


def test_promised_bytes_ignores_fully_allocated_and_overallocated_files() -> None:
    running = [(256 * MIB, 100 * MIB), (512 * MIB, 512 * MIB), (64 * MIB, 80 * MIB)]
    assert promised_bytes(running) == 156 * MIB


def test_room_with_no_running_guests_is_free_minus_headroom() -> None:
    assert room_for_new_guest(1000 * MIB, [], 16 * MIB) == 984 * MIB


def test_room_subtracts_untouched_memory_of_running_guests() -> None:
    running = [(256 * MIB, 92 * MIB), (128 * MIB, 128 * MIB)]
    assert room_for_new_guest(300 * MIB, running, 16 * MIB) == 300 * MIB - 164 * MIB - 16 * MIB


def test_room_is_never_negative() -> None:
    assert room_for_new_guest(100 * MIB, [(1024 * MIB, 0)], 16 * MIB) == 0
    assert room_for_new_guest(0, [], 16 * MIB) == 0


def test_room_with_zero_headroom_and_immediate_allocation_is_all_free_room() -> None:
    running = [(256 * MIB, 256 * MIB)] * 3
    assert room_for_new_guest(123 * MIB + 7, running, 0) == 123 * MIB + 7


def test_room_rejects_negative_inputs() -> None:
    with pytest.raises(ValueError, match="free_bytes"):
        room_for_new_guest(-1, [], 0)
    with pytest.raises(ValueError, match="headroom_bytes"):
        room_for_new_guest(0, [], -1)


# --- check_guest_fits -------------------------------------------------------------------------


def test_guest_that_fits_exactly_passes() -> None:
    # 300 free - 164 promised - 16 headroom = 120 MiB
    running = [(256 * MIB, 100 * MIB), (64 * MIB, 56 * MIB)]
    check_guest_fits(120, 300 * MIB, running, 16 * MIB, Path("/x"))


def test_guest_one_mib_too_big_is_refused_with_the_full_account() -> None:
    running = [(256 * MIB, 100 * MIB), (64 * MIB, 56 * MIB), (32 * MIB, 32 * MIB)]
    with pytest.raises(InsufficientBackingStore) as excinfo:
        check_guest_fits(256, 300 * MIB, running, 16 * MIB, Path("/x"), "/dev/loop0")
    assert str(excinfo.value) == (
        "guest needs 256 MiB of memory file but the backing store /x (/dev/loop0) can hold "
        "only 120 MiB now: 300 MiB free, 164 MiB promised to 2 running guests, 16 MiB headroom "
        "([libvirt] backing_store_headroom_mb)"
    )


def test_refusal_without_device_or_promises() -> None:
    with pytest.raises(InsufficientBackingStore) as excinfo:
        check_guest_fits(64, 40 * MIB, [], 0, Path("/var/lib/libvirt/qemu/ram"))
    assert str(excinfo.value) == (
        "guest needs 64 MiB of memory file but the backing store /var/lib/libvirt/qemu/ram "
        "can hold only 40 MiB now: 40 MiB free, nothing promised to running guests, "
        "0 MiB headroom ([libvirt] backing_store_headroom_mb)"
    )


def test_refusal_with_one_promising_guest_uses_singular_and_fractions() -> None:
    running = [(128 * MIB, 64 * MIB + MIB // 2)]
    with pytest.raises(InsufficientBackingStore) as excinfo:
        check_guest_fits(100, 100 * MIB, running, 16 * MIB, Path("/x"))
    message = str(excinfo.value)
    assert "63.50 MiB promised to 1 running guest," in message
    assert "can hold only 20.50 MiB now" in message


def test_full_store_refuses_even_a_small_guest() -> None:
    with pytest.raises(InsufficientBackingStore, match="can hold only 0 MiB now"):
        check_guest_fits(1, 10 * MIB, [(64 * MIB, 0)], 0, Path("/x"))


def test_zero_sized_guest_always_fits_and_negative_is_a_bug() -> None:
    check_guest_fits(0, 0, [], 0, Path("/x"))
    with pytest.raises(ValueError, match="guest_memory_mb"):
        check_guest_fits(-1, GIB, [], 0, Path("/x"))


# --- effective_capacity_mb --------------------------------------------------------------------


def test_capacity_is_configured_when_the_store_can_hold_it() -> None:
    assert effective_capacity_mb(4096, 10 * GIB, 8 * GIB, 0) == (4096, None)


def test_capacity_equal_to_every_limit_has_no_reason() -> None:
    assert effective_capacity_mb(1024, GIB, GIB, 0) == (1024, None)


def test_capacity_limited_by_filesystem_size() -> None:
    capacity, reason = effective_capacity_mb(16384, 10 * GIB, 10 * GIB, 0)
    assert capacity == 10240
    assert reason == (
        "the backing filesystem is only 10240 MiB in size, "
        "less than [libvirt] file_backed_memory = 16384 MiB"
    )


def test_capacity_limited_by_free_room_counts_guests_files_as_room() -> None:
    capacity, reason = effective_capacity_mb(4096, 10 * GIB, 1000 * MIB, 500 * MIB)
    assert capacity == 1500
    assert reason == (
        "the backing store can hold only 1500 MiB of guest memory "
        "(1000 MiB free + 500 MiB held by guests' memory files), "
        "less than [libvirt] file_backed_memory = 4096 MiB"
    )


def test_capacity_keeps_headroom_and_floors_to_whole_mib() -> None:
    capacity, reason = effective_capacity_mb(4096, 10 * GIB, 1000 * MIB + 700_000, 0, 16 * MIB)
    assert capacity == 984
    assert reason is not None
    assert "- 16 MiB headroom ([libvirt] backing_store_headroom_mb)" in reason


def test_filesystem_size_wins_the_reason_when_both_limits_tie() -> None:
    capacity, reason = effective_capacity_mb(4096, GIB, GIB, 0)
    assert capacity == 1024
    assert reason is not None and reason.startswith("the backing filesystem is only 1024 MiB")


def test_capacity_never_negative_and_zero_configured_stays_zero() -> None:
    assert effective_capacity_mb(4096, 10 * GIB, 0, 0, 16 * MIB)[0] == 0
    assert effective_capacity_mb(0, 10 * GIB, GIB, 0) == (0, None)


def test_capacity_below_one_mib_is_zero() -> None:
    assert effective_capacity_mb(4096, MIB - 1, MIB - 1, 0)[0] == 0


def test_capacity_of_a_ram_backed_store_names_ram_as_the_reason() -> None:
    capacity, reason = effective_capacity_mb(16384, 100 * GIB, 100 * GIB, 0, 0, 10 * GIB)
    assert capacity == 10240
    assert reason == (
        "the backing store is RAM-backed and can hold no more than RAM allows, 10240 MiB, "
        "less than [libvirt] file_backed_memory = 16384 MiB"
    )


def test_capacity_of_a_ramfs_with_no_size_is_bounded_by_ram() -> None:
    assert effective_capacity_mb(16384, 0, 6 * GIB, 0, 0, 8 * GIB)[0] == 6144


def test_capacity_from_clamped_store_facts_is_the_same_with_or_without_the_limit() -> None:
    # StoreFacts.size_bytes is already cut to RAM: callers that pass no limit agree.
    without = effective_capacity_mb(16384, 10 * GIB, 7 * GIB, 0)
    with_limit = effective_capacity_mb(16384, 10 * GIB, 7 * GIB, 0, 0, 10 * GIB)
    assert without[0] == with_limit[0] == 7168


def test_a_ram_limit_above_the_filesystem_size_leaves_the_filesystem_reason() -> None:
    _, reason = effective_capacity_mb(16384, 4 * GIB, 4 * GIB, 0, 0, 10 * GIB)
    assert reason is not None and reason.startswith("the backing filesystem is only 4096 MiB")


def test_capacity_rejects_negative_inputs() -> None:
    with pytest.raises(ValueError, match="allocated_by_guests_bytes"):
        effective_capacity_mb(1, GIB, GIB, -5)
