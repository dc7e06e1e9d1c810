"""Scheduler host state and filters: Placement's capacity math and each filter's verdict."""

from __future__ import annotations

import pytest

from filemem.scheduler import HostRecord, RequestSpec, build_request
from filemem.scheduler.filters import (
    ComputeEnabledFilter,
    FileBackedMemoryFilter,
    RamAllocationRatioFilter,
    Rejection,
    ResourcesFilter,
)
from filemem.scheduler.host_state import (
    HostState,
    Inventory,
    state_from_provider,
    state_from_summary,
    unreported_state,
)
from filemem.scheduler.request import PlacementRequest

FB = "COMPUTE_MEM_BACKING_FILE"


def request(
    memory_mb: int = 1024, vcpus: int = 1, disk_gb: int = 0, page_size: str | None = None
) -> PlacementRequest:
    extra = {"hw:mem_page_size": page_size} if page_size else {}
    return build_request(RequestSpec("i", "p", "u", memory_mb, vcpus, disk_gb, extra))


def host(
    memory: int = 4096,
    used: int = 0,
    *,
    traits: frozenset[str] = frozenset(),
    disabled: bool = False,
    **memory_inventory: float,
) -> HostState:
    inventories: dict[str, dict[str, float]] = {
        "MEMORY_MB": {"total": memory, **memory_inventory},
        "VCPU": {"total": 8},
    }
    return state_from_provider(
        HostRecord("h1", "rp-1", disabled), inventories, {"MEMORY_MB": used}, traits
    )


@pytest.mark.parametrize(
    ("total", "reserved", "ratio", "capacity"),
    [
        (4096, 0, 1.0, 4096),
        (4096, 512, 1.0, 3584),
        (1000, 100, 1.5, 1350),
        (10, 0, 1.15, 11),  # floor: Placement compares integers against the float product
        (100, 200, 1.0, 0),  # reserved beyond total leaves nothing
    ],
)
def test_capacity_is_placements(total: int, reserved: int, ratio: float, capacity: int) -> None:
    inventory = Inventory(total=total, reserved=reserved, allocation_ratio=ratio)
    assert inventory.capacity == capacity


def test_inventory_from_placement_fills_defaults() -> None:
    inventory = Inventory.from_placement({"total": 2048})
    assert (
        inventory.reserved,
        inventory.allocation_ratio,
        inventory.min_unit,
        inventory.step_size,
        inventory.detailed,
    ) == (0, 1.0, 1, 1, True)
    assert inventory.max_unit == 2147483647


def test_free_consume_release() -> None:
    state = host(4096, used=1024, reserved=1024)
    assert state.free("MEMORY_MB") == 2048
    state.consume({"MEMORY_MB": 2048})
    assert state.free("MEMORY_MB") == 0
    state.release({"MEMORY_MB": 4096})
    assert state.usage["MEMORY_MB"] == 0
    assert state.free("DISK_GB") == 0


def test_summary_state_keeps_capacity_not_detail() -> None:
    summary = {"resources": {"MEMORY_MB": {"capacity": 6144, "used": 1024}}, "traits": [FB]}
    state = state_from_summary(HostRecord("h", "rp"), summary)
    assert state.free("MEMORY_MB") == 5120
    assert not state.inventories["MEMORY_MB"].detailed
    assert state.traits == {FB}


def test_resources_filter_passes_exact_fit_and_names_shortfall() -> None:
    check = ResourcesFilter().check
    assert check(host(4096, used=3072), request(1024)) is None
    assert check(host(4096, used=3072), request(4096)) == Rejection(
        "lacks MEMORY_MB 4096", "lack MEMORY_MB 4096", free=1024
    )
    assert check(host(), request(vcpus=9)) == Rejection("lacks VCPU 9", "lack VCPU 9", free=8)
    assert check(host(), request(disk_gb=1)) == Rejection(
        "has no DISK_GB inventory", "have no DISK_GB inventory"
    )


def test_resources_filter_honours_unit_constraints() -> None:
    check = ResourcesFilter().check
    refused = check(host(8192, max_unit=2048), request(4096))
    assert refused is not None and "max_unit 2048" in refused.singular
    refused = check(host(8192, min_unit=2048), request(1024))
    assert refused is not None and "min_unit 2048" in refused.singular
    refused = check(host(8192, step_size=512), request(1000))
    assert refused is not None and "step_size 512" in refused.singular
    assert check(host(8192, step_size=512), request(1024)) is None


def test_resources_filter_on_hosts_placement_did_not_report() -> None:
    check = ResourcesFilter().check
    refused = check(unreported_state(HostRecord("h", "rp")), request())
    assert refused is not None and "no free MEMORY_MB" in refused.singular
    refused = check(unreported_state(HostRecord("h", "rp"), missing=True), request())
    assert refused is not None and "no resource provider" in refused.singular


def test_file_backed_filter_only_refuses_huge_pages_on_file_backed_hosts() -> None:
    check = FileBackedMemoryFilter().check
    file_backed = host(traits=frozenset({FB}))
    assert check(file_backed, request()) is None
    assert check(host(), request(page_size="large")) is None
    refused = check(file_backed, request(page_size="large"))
    assert refused is not None
    assert refused.singular == (
        "has COMPUTE_MEM_BACKING_FILE but the flavor asks for huge pages (hw:mem_page_size=large)"
    )


def test_ram_ratio_filter_refuses_overcommitted_file_backed_hosts() -> None:
    check = RamAllocationRatioFilter().check
    assert check(host(traits=frozenset({FB}), allocation_ratio=1.0), request()) is None
    assert check(host(allocation_ratio=1.5), request()) is None  # not file-backed: nova rules
    refused = check(host(traits=frozenset({FB}), allocation_ratio=1.5), request())
    assert refused is not None
    assert refused.singular == ("is file-backed with MEMORY_MB allocation_ratio 1.5 (must be 1.0)")


def test_ram_ratio_filter_trusts_summary_only_hosts() -> None:
    summary = {"resources": {"MEMORY_MB": {"capacity": 6144, "used": 0}}, "traits": [FB]}
    state = state_from_summary(HostRecord("h", "rp"), summary)
    assert RamAllocationRatioFilter().check(state, request()) is None


def test_compute_enabled_filter() -> None:
    assert ComputeEnabledFilter().check(host(), request()) is None
    refused = ComputeEnabledFilter().check(host(disabled=True), request())
    assert refused is not None and refused.singular == "is disabled"
    down = state_from_provider(HostRecord("h", "rp", down=True), {}, {}, frozenset())
    refused = ComputeEnabledFilter().check(down, request())
    assert refused is not None and refused.plural.startswith("are down")
