"""The pure aggregate policy: the seed's ratio rule, the ratio a host gets, zones."""

from __future__ import annotations

import pytest

from filemem.common.aggregates import (
    AggregateFacts,
    ZoneRequest,
    add_host_refusal,
    breaks_file_backed,
    host_zone,
    merge_metadata,
    metadata_refusal,
    parse_ratio,
    parse_zone_request,
    ram_ratio,
    registration_refusal,
    zone_conflicts,
)


def agg(id_: int, **metadata: str) -> AggregateFacts:
    return AggregateFacts(id_, f"agg{id_}", metadata)


@pytest.mark.parametrize(
    ("value", "ratio"),
    [("1.5", 1.5), ("1", 1.0), ("x", None), ("0", None), ("-2", None), ("nan", None),
     ("inf", None)],
)  # fmt: skip
def test_parse_ratio(value: str, ratio: float | None) -> None:
    assert parse_ratio(value) == ratio


@pytest.mark.parametrize(
    ("metadata", "breaks"),
    [({}, False), ({"ram_allocation_ratio": "1.0"}, False), ({"ram_allocation_ratio": "1"}, False),
     ({"ram_allocation_ratio": "1.5"}, True), ({"ram_allocation_ratio": "0.5"}, True),
     ({"ram_allocation_ratio": "lots"}, True), ({"cpu_allocation_ratio": "4"}, False)],
)  # fmt: skip
def test_which_metadata_a_file_backed_host_cannot_have(
    metadata: dict[str, str], breaks: bool
) -> None:
    assert breaks_file_backed(metadata) is breaks


def test_add_host_refuses_only_a_file_backed_host_in_an_over_committing_aggregate() -> None:
    over = agg(1, ram_allocation_ratio="1.5")
    why = add_host_refusal("h1", True, over)
    assert why is not None and "h1" in why and "agg1" in why and "'1.5'" in why
    assert add_host_refusal("h1", False, over) is None
    assert add_host_refusal("h1", True, agg(2, ram_allocation_ratio="1.0")) is None
    assert add_host_refusal("h1", True, agg(3)) is None


def test_metadata_refusal_looks_at_the_metadata_after_the_change() -> None:
    current = agg(1, ram_allocation_ratio="1.5")
    # Deleting the bad ratio (null) is allowed, even with file-backed hosts in it.
    assert metadata_refusal(current, {"ram_allocation_ratio": None}, ["h1"]) is None
    why = metadata_refusal(agg(2), {"ram_allocation_ratio": "2.0"}, ["h2", "h1"])
    assert why is not None and "h1, h2" in why and "agg2" in why
    assert metadata_refusal(agg(2), {"ram_allocation_ratio": "bad"}, ["h1"]) is not None
    assert metadata_refusal(agg(2), {"ram_allocation_ratio": "2.0"}, []) is None
    assert metadata_refusal(agg(2), {"other": "x"}, ["h1"]) is None


def test_registration_refusal_names_the_first_offending_aggregate() -> None:
    assert registration_refusal("h1", [agg(1), agg(2, ram_allocation_ratio="1.0")]) is None
    why = registration_refusal("h1", [agg(1), agg(7, ram_allocation_ratio="3")])
    assert why is not None and "aggregate agg7 (id 7)" in why and "h1" in why


def test_merge_metadata_deletes_null_values() -> None:
    assert merge_metadata({"a": "1", "b": "2"}, {"a": None, "c": "3", "z": None}) == {
        "b": "2",
        "c": "3",
    }


def test_ram_ratio_is_the_smallest_an_aggregate_sets_and_none_for_file_backed() -> None:
    aggregates = [agg(1, ram_allocation_ratio="2.0"), agg(2, ram_allocation_ratio="1.5"), agg(3)]
    assert ram_ratio(False, aggregates) == 1.5
    assert ram_ratio(False, [agg(1), agg(2, ram_allocation_ratio="junk")]) is None
    assert ram_ratio(True, aggregates) is None


def test_a_host_is_in_one_zone() -> None:
    others = [agg(1, availability_zone="az1"), agg(2, availability_zone="az2"), agg(3)]
    assert zone_conflicts("az1", 9, others) == ["az2"]
    assert zone_conflicts("az2", 1, others) == []
    assert host_zone([agg(3)]) == "nova"
    assert host_zone([agg(3), agg(1, availability_zone="az1")]) == "az1"


@pytest.mark.parametrize(
    ("value", "wanted"),
    [("az1", ZoneRequest("az1")), ("az1:h1", ZoneRequest("az1", "h1")),
     ("az1::n1", ZoneRequest("az1", None, "n1")), (":h1", ZoneRequest(None, "h1"))],
)  # fmt: skip
def test_parse_zone_request(value: str, wanted: ZoneRequest) -> None:
    assert parse_zone_request(value) == wanted
