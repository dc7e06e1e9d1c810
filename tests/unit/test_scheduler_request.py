"""Scheduler request building: flavor sizes and extra specs to a Placement request (pure)."""

from __future__ import annotations

import pytest

from filemem.exceptions import InvalidInput
from filemem.scheduler import RequestSpec, build_request


def spec(
    memory_mb: int = 4096,
    vcpus: int = 2,
    disk_gb: int = 0,
    extra_specs: dict[str, str] | None = None,
) -> RequestSpec:
    return RequestSpec(
        "inst",
        "proj",
        "user",
        memory_mb=memory_mb,
        vcpus=vcpus,
        disk_gb=disk_gb,
        extra_specs=extra_specs or {},
    )


def test_memory_and_vcpus_always_disk_only_when_positive() -> None:
    assert dict(build_request(spec()).resources) == {"MEMORY_MB": 4096, "VCPU": 2}
    assert dict(build_request(spec(disk_gb=20)).resources) == {
        "MEMORY_MB": 4096,
        "VCPU": 2,
        "DISK_GB": 20,
    }


def test_plain_flavor_forbids_nothing() -> None:
    request = build_request(spec(extra_specs={"hw:cpu_policy": "dedicated"}))
    assert request.forbidden_traits == frozenset()
    assert request.required_traits == frozenset()
    assert not request.wants_huge_pages


@pytest.mark.parametrize("page_size", ["large", "small", "any", "2MB", "1048576"])
def test_any_mem_page_size_forbids_file_backed_hosts(page_size: str) -> None:
    request = build_request(spec(extra_specs={"hw:mem_page_size": page_size}))
    assert request.forbidden_traits == frozenset({"COMPUTE_MEM_BACKING_FILE"})
    assert request.mem_page_size == page_size
    assert request.wants_huge_pages


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("memory_mb", 0),
        ("memory_mb", -1),
        ("vcpus", 0),
        ("disk_gb", -5),
        ("vcpus", True),
    ],
)
def test_impossible_sizes_are_refused(field: str, value: int) -> None:
    sizes: dict[str, int] = {"memory_mb": 512, "vcpus": 1, "disk_gb": 0, field: value}
    with pytest.raises(InvalidInput, match=field):
        build_request(
            RequestSpec(
                "inst",
                "proj",
                "user",
                memory_mb=sizes["memory_mb"],
                vcpus=sizes["vcpus"],
                disk_gb=sizes["disk_gb"],
            )
        )


def test_describe_names_resources_and_traits() -> None:
    request = build_request(spec(disk_gb=1, extra_specs={"hw:mem_page_size": "large"}))
    assert request.describe() == (
        "MEMORY_MB:4096, VCPU:2, DISK_GB:1 without COMPUTE_MEM_BACKING_FILE"
    )


def test_request_resources_are_read_only() -> None:
    request = build_request(spec())
    with pytest.raises(TypeError):
        request.resources["MEMORY_MB"] = 1  # type: ignore[index]
