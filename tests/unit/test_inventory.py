"""Inventory and trait policy: what a host reports to Placement, incl. capacity truth."""

from __future__ import annotations

import pytest

from filemem.common.resources import (
    DISK_GB,
    GIB,
    MEMORY_BACKING_FILE_TRAIT,
    MEMORY_MB,
    VCPU,
    guest_resources,
)
from filemem.compute.inventory import (
    HostResources,
    InventoryConfig,
    StoreUsage,
    compute_inventory,
    merge_traits,
)

MIB = 1024 * 1024
HOST = HostResources(memory_mb=24000, vcpus=8, disk_bytes=250 * GIB + 7 * MIB)
FILE_BACKED = InventoryConfig(
    file_backed_memory_mb=4096, ram_allocation_ratio=1.0, cpu_allocation_ratio=4.0
)
BIG_STORE = StoreUsage(size_bytes=100 * GIB, free_bytes=80 * GIB, allocated_by_guests_bytes=0)


def test_file_backed_host_reports_the_configured_memory_not_host_ram() -> None:
    result = compute_inventory(FILE_BACKED, HOST, BIG_STORE)
    assert result.inventories[MEMORY_MB] == {
        "total": 4096,
        "reserved": 0,
        "min_unit": 1,
        "max_unit": 4096,
        "step_size": 1,
        "allocation_ratio": 1.0,
    }
    assert result.traits == {"COMPUTE_MEM_BACKING_FILE"} == {MEMORY_BACKING_FILE_TRAIT}
    assert not result.capacity_reduced and result.capacity_reason is None
    assert result.store_capacity_mb == 4096


def test_file_backed_memory_ignores_ram_allocation_ratio() -> None:
    # The startup checks refuse ratio != 1.0; the inventory itself never over-commits the store.
    config = InventoryConfig(file_backed_memory_mb=4096, ram_allocation_ratio=1.5)
    assert (
        compute_inventory(config, HOST, BIG_STORE).inventories[MEMORY_MB]["allocation_ratio"] == 1.0
    )


def test_vcpu_and_disk() -> None:
    config = InventoryConfig(
        file_backed_memory_mb=4096, cpu_allocation_ratio=16.0, reserved_host_disk_mb=1025
    )
    result = compute_inventory(config, HOST, BIG_STORE)
    assert result.inventories[VCPU] == {
        "total": 8,
        "reserved": 0,
        "min_unit": 1,
        "max_unit": 8,
        "step_size": 1,
        "allocation_ratio": 16.0,
    }
    # Floored to whole GiB; reserved MiB rounded up to GiB (1025 MiB -> 2 GiB), as nova does.
    assert result.inventories[DISK_GB]["total"] == 250
    assert result.inventories[DISK_GB]["max_unit"] == 250
    assert result.inventories[DISK_GB]["reserved"] == 2


def test_disk_smaller_than_a_gib_is_left_out_because_placement_refuses_total_0() -> None:
    host = HostResources(memory_mb=1024, vcpus=1, disk_bytes=GIB - 1)
    assert DISK_GB not in compute_inventory(FILE_BACKED, host, BIG_STORE).inventories


def test_reserved_host_memory_is_kept_when_the_store_holds_the_rest() -> None:
    config = InventoryConfig(file_backed_memory_mb=4096, reserved_host_memory_mb=512)
    # The store holds exactly what guests may get (4096 - 512), headroom 0 here.
    store = StoreUsage(size_bytes=10 * GIB, free_bytes=3584 * MIB, allocated_by_guests_bytes=0)
    result = compute_inventory(config, HOST, store)
    assert result.inventories[MEMORY_MB]["reserved"] == 512
    assert not result.capacity_reduced


def test_non_file_backed_host_uses_ram_its_ratio_and_no_trait() -> None:
    config = InventoryConfig(
        file_backed_memory_mb=0, reserved_host_memory_mb=512, ram_allocation_ratio=1.5
    )
    result = compute_inventory(config, HOST, None)
    memory = result.inventories[MEMORY_MB]
    assert (memory["total"], memory["reserved"], memory["max_unit"]) == (24000, 512, 24000)
    assert memory["allocation_ratio"] == 1.5
    assert result.traits == frozenset()
    assert result.store_capacity_mb is None


def test_non_file_backed_host_with_unset_ratio_reports_1_0() -> None:
    config = InventoryConfig(file_backed_memory_mb=0, ram_allocation_ratio=None)
    assert (
        compute_inventory(config, HOST, BIG_STORE).inventories[MEMORY_MB]["allocation_ratio"] == 1.0
    )


def test_file_backed_host_needs_store_facts() -> None:
    with pytest.raises(ValueError, match="backing store"):
        compute_inventory(FILE_BACKED, HOST, None)


# -- capacity truth ------------------------------------------------------------------------


def test_store_smaller_than_configured_raises_reserved_by_the_shortfall() -> None:
    store = StoreUsage(size_bytes=3000 * MIB, free_bytes=3000 * MIB, allocated_by_guests_bytes=0)
    result = compute_inventory(FILE_BACKED, HOST, store)
    memory = result.inventories[MEMORY_MB]
    assert memory["total"] == 4096  # what the operator configured stays visible
    assert memory["max_unit"] == 4096
    assert memory["reserved"] == 4096 - 3000
    assert result.memory_shortfall_mb == 1096
    assert result.store_capacity_mb == 3000
    assert result.capacity_reason is not None
    assert "only 3000 MiB in size" in result.capacity_reason
    assert "[libvirt] file_backed_memory = 4096 MiB" in result.capacity_reason
    assert "reserved raised from 0 to 1096 MiB" in result.capacity_reason


def test_short_free_room_counts_what_our_guests_already_hold_and_the_headroom() -> None:
    config = InventoryConfig(file_backed_memory_mb=4096, backing_store_headroom_mb=16)
    # 1000 free + 1024 held by running guests - 16 headroom = 2008 MiB for guests in all.
    store = StoreUsage(
        size_bytes=8 * GIB, free_bytes=1000 * MIB, allocated_by_guests_bytes=1024 * MIB
    )
    result = compute_inventory(config, HOST, store)
    assert result.inventories[MEMORY_MB]["reserved"] == 4096 - 2008
    assert result.capacity_reason is not None
    assert "1000 MiB free + 1024 MiB held by guests' memory files" in result.capacity_reason


def test_shortfall_counts_beyond_reserved_host_memory_not_on_top_of_it() -> None:
    config = InventoryConfig(file_backed_memory_mb=4096, reserved_host_memory_mb=512)
    store = StoreUsage(size_bytes=3000 * MIB, free_bytes=3000 * MIB, allocated_by_guests_bytes=0)
    result = compute_inventory(config, HOST, store)
    # Guests may get 3000 MiB (what the store holds): reserved 1096, i.e. 584 beyond the 512.
    assert result.inventories[MEMORY_MB]["reserved"] == 1096
    assert result.memory_shortfall_mb == 584


def test_tiny_store_marks_the_host_full() -> None:
    store = StoreUsage(size_bytes=200 * MIB, free_bytes=10 * MIB, allocated_by_guests_bytes=0)
    config = InventoryConfig(file_backed_memory_mb=4096, backing_store_headroom_mb=16)
    result = compute_inventory(config, HOST, store)
    memory = result.inventories[MEMORY_MB]
    # reserved == total is what Placement accepts as "nothing left" (reserved > total is a 400).
    assert memory["reserved"] == memory["total"] == 4096
    assert result.store_capacity_mb == 0
    assert result.capacity_reason is not None and "(host full)" in result.capacity_reason


def test_store_recovering_brings_reserved_back() -> None:
    short = StoreUsage(size_bytes=8 * GIB, free_bytes=2048 * MIB, allocated_by_guests_bytes=0)
    assert compute_inventory(FILE_BACKED, HOST, short).inventories[MEMORY_MB]["reserved"] == 2048
    recovered = StoreUsage(size_bytes=8 * GIB, free_bytes=6 * GIB, allocated_by_guests_bytes=0)
    result = compute_inventory(FILE_BACKED, HOST, recovered)
    assert result.inventories[MEMORY_MB]["reserved"] == 0
    assert not result.capacity_reduced and result.capacity_reason is None


def test_partial_mib_of_room_is_not_reported() -> None:
    store = StoreUsage(
        size_bytes=8 * GIB, free_bytes=4095 * MIB + MIB - 1, allocated_by_guests_bytes=0
    )
    assert compute_inventory(FILE_BACKED, HOST, store).inventories[MEMORY_MB]["reserved"] == 1


# -- traits and guest allocations ----------------------------------------------------------


def test_merge_traits_keeps_foreign_traits_and_owns_the_backing_file_trait() -> None:
    current = {"CUSTOM_RACK_7", "HW_CPU_X86_AVX2", MEMORY_BACKING_FILE_TRAIT}
    assert merge_traits(current, []) == {"CUSTOM_RACK_7", "HW_CPU_X86_AVX2"}
    assert merge_traits({"CUSTOM_RACK_7"}, [MEMORY_BACKING_FILE_TRAIT]) == {
        "CUSTOM_RACK_7",
        MEMORY_BACKING_FILE_TRAIT,
    }
    with pytest.raises(ValueError, match="not owned"):
        merge_traits(current, ["CUSTOM_RACK_7"])


def test_guest_resources_leave_zero_amounts_out() -> None:
    assert guest_resources(256, 1, 0) == {MEMORY_MB: 256, VCPU: 1}
    assert guest_resources(256, 2, 10) == {MEMORY_MB: 256, VCPU: 2, DISK_GB: 10}


def test_a_ram_backed_store_clamps_capacity_and_names_ram_as_the_reason() -> None:
    from filemem.compute.inventory import (
        HostResources,
        InventoryConfig,
        StoreUsage,
        compute_inventory,
    )

    config = InventoryConfig(
        file_backed_memory_mb=8192,
        reserved_host_memory_mb=0,
        ram_allocation_ratio=1.0,
        cpu_allocation_ratio=4.0,
        reserved_host_disk_mb=0,
        backing_store_headroom_mb=0,
    )
    host = HostResources(memory_mb=4096, vcpus=2, disk_bytes=10 * 2**30)
    # A tmpfs whose size= says 16 GiB on a host with 4 GiB of RAM and no swap.
    store = StoreUsage(
        size_bytes=4096 * 2**20,
        free_bytes=4096 * 2**20,
        allocated_by_guests_bytes=0,
        ram_limit_bytes=4096 * 2**20,
    )
    wanted = compute_inventory(config, host, store)
    assert wanted.inventories["MEMORY_MB"]["reserved"] == 8192 - 4096
    assert wanted.capacity_reason is not None and "RAM" in wanted.capacity_reason


def test_ram_backed_memory_is_capped_by_the_guest_memory_limit_not_by_file_backed() -> None:
    from filemem.compute.inventory import HostResources, InventoryConfig, compute_inventory

    host = HostResources(memory_mb=24000, vcpus=2, disk_bytes=10 * 2**30)
    ram = InventoryConfig(
        file_backed_memory_mb=0, ram_allocation_ratio=1.0, guest_memory_limit_mb=4096
    )
    assert compute_inventory(ram, host, None).inventories["MEMORY_MB"]["total"] == 4096
    # File-backed guests may exceed the limit: that is the point of file-backed memory.
    from filemem.compute.inventory import StoreUsage

    store = StoreUsage(size_bytes=2**40, free_bytes=2**40, allocated_by_guests_bytes=0)
    file_backed = InventoryConfig(
        file_backed_memory_mb=16384, ram_allocation_ratio=1.0, guest_memory_limit_mb=4096
    )
    memory = compute_inventory(file_backed, host, store).inventories["MEMORY_MB"]
    assert memory["total"] == 16384 and memory["reserved"] == 0
