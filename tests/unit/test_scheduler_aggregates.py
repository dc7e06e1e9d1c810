"""AggregateInstanceExtraSpecsFilter: nova's operators, scoping and merging, and the scheduler
reading the injected aggregate metadata once per request, against the embedded Placement."""

from __future__ import annotations

import dataclasses
import uuid as uuidlib
from collections.abc import Mapping

import pytest

from filemem.placement.embedded import EmbeddedPlacement
from filemem.scheduler import (
    HostRecord,
    NoValidHost,
    RequestSpec,
    Scheduler,
    build_request,
    no_aggregates,
)
from filemem.scheduler.filters import AggregateInstanceExtraSpecsFilter
from filemem.scheduler.filters.aggregate_extra_specs import merge_aggregate_metadata, passes
from filemem.scheduler.filters.extra_specs_ops import match
from filemem.scheduler.host_state import HostState
from filemem.scheduler.request import aggregate_requirements


@pytest.mark.parametrize(
    ("value", "requirement", "expected"),
    [
        ("ssd", "ssd", True),
        ("ssd", "hdd", False),
        ("ssd", "s== ssd", True),
        ("ssd", "s!= ssd", False),
        ("abc", "s< abd", True),
        ("abc", "s<= abc", True),
        ("abd", "s> abc", True),
        ("abc", "s>= abd", False),
        ("123", "= 123", True),  # nova's "=" is "at least"
        ("124", "= 123", True),
        ("122", "= 123", False),
        ("12", "== 12.0", True),
        ("12", "!= 12", False),
        ("4", ">= 4", True),
        ("3", "<= 2", False),
        ("fast,ssd", "<in> ssd", True),
        ("fast", "<in> ssd", False),
        ("a b c", "<all-in> a c", True),
        ("a b", "<all-in> a c", False),
        ("v2", "<or> v1 <or> v2 <or> v3", True),
        ("v4", "<or> v1 <or> v2 <or> v3", False),
        ("v1", "<or> v1", True),
        ("x", ">= 4", False),  # not a number: no match (nova would raise)
        ("4", ">=", False),  # an operator without an operand matches nothing
    ],
)
def test_match_follows_novas_extra_specs_ops(value: str, requirement: str, expected: bool) -> None:
    assert match(value, requirement) is expected


def test_none_matches_only_a_verbatim_requirement_of_nothing() -> None:
    assert match(None, "s== ssd") is False
    assert match(None, "ssd") is False


def test_scoped_and_unscoped_keys_as_nova() -> None:
    specs = {
        "aggregate_instance_extra_specs:ssd": "true",
        "aggregate_instance_extra_specs:a:b": "c",
        "tier": "gold",
        "hw:mem_page_size": "large",
        "quota:cpu_shares": "10",
    }
    assert aggregate_requirements(specs) == {"ssd": "true", "a:b": "c", "tier": "gold"}


def test_merged_metadata_offers_every_aggregates_values() -> None:
    merged = merge_aggregate_metadata([{"ssd": "true", "zone": "a"}, {"ssd": "false, maybe"}])
    assert merged == {"ssd": "false,maybe,true", "zone": "a"}
    assert passes(merged, {"ssd": "true"}) is None
    assert passes(merged, {"ssd": "maybe", "zone": "s== a"}) is None
    assert passes(merged, {"ssd": "true", "zone": "b"}) == "zone"
    assert passes({}, {"ssd": "true"}) == "ssd"
    assert passes({"ssd": ""}, {"ssd": ""}) == "ssd"  # nova: an empty value is no value


def _spec(extra_specs: Mapping[str, str], memory_mb: int = 512) -> RequestSpec:
    return RequestSpec(str(uuidlib.uuid4()), "p", "u", memory_mb, 1, 0, dict(extra_specs))


def test_filter_verdicts() -> None:
    metadata = {"fast": {"ssd": "true"}}
    request = build_request(_spec({"aggregate_instance_extra_specs:ssd": "true"}))
    request = dataclasses.replace(request, aggregate_metadata=metadata)
    check = AggregateInstanceExtraSpecsFilter().check
    assert check(HostState(HostRecord("fast", "rp-1")), request) is None
    refused = check(HostState(HostRecord("slow", "rp-2")), request)
    assert refused is not None
    assert refused.singular == "has no aggregate metadata ssd matching 'true'"
    plain = build_request(_spec({"hw:mem_page_size": "large"}))
    assert check(HostState(HostRecord("slow", "rp-2")), plain) is None


# --- through the scheduler ----------------------------------------------------------------------


def _hosts(placement: EmbeddedPlacement, names: list[str]) -> list[HostRecord]:
    client = placement.client()
    records = []
    for name in names:
        uuid = str(uuidlib.uuid4())
        client.ensure_resource_provider(uuid, f"{name}-{uuid[:8]}")
        client.set_inventories(uuid, {"MEMORY_MB": {"total": 4096}, "VCPU": {"total": 8}})
        records.append(HostRecord(f"{name}-{uuid[:8]}", uuid))
    return records


def test_the_scheduler_places_by_aggregate_metadata(embedded_placement: EmbeddedPlacement) -> None:
    records = _hosts(embedded_placement, ["a", "b", "c"])
    calls: list[int] = []

    def metadata() -> dict[str, dict[str, str]]:
        calls.append(1)
        return {records[1].host: {"ssd": "true"}, records[2].host: {"ssd": "false"}}

    scheduler = Scheduler(
        embedded_placement.client(), lambda: records, host_aggregate_metadata=metadata
    )
    for _ in range(3):
        chosen = scheduler.select_and_claim(_spec({"aggregate_instance_extra_specs:ssd": "true"}))
        assert chosen.host == records[1].host
    assert len(calls) == 3
    scheduler.select_and_claim(_spec({}))
    assert len(calls) == 3  # no requirement, no read
    with pytest.raises(NoValidHost) as info:
        scheduler.select_and_claim(_spec({"ssd": "<in> nvme"}))
    assert "3 hosts; 3 have no aggregate metadata ssd matching '<in> nvme'" in info.value.reason
    scheduler.close()


def test_without_aggregates_a_requirement_fits_nowhere(
    embedded_placement: EmbeddedPlacement,
) -> None:
    records = _hosts(embedded_placement, ["d"])
    scheduler = Scheduler(embedded_placement.client(), lambda: records)
    assert scheduler.host_aggregate_metadata is no_aggregates
    with pytest.raises(NoValidHost, match="1 has no aggregate metadata tier matching 'gold'"):
        scheduler.select_and_claim(_spec({"tier": "gold"}))
    assert scheduler.select_and_claim(_spec({})).host == records[0].host
    scheduler.close()
