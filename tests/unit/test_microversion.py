"""Microversion negotiation: nova's header forms, "latest", 400 for malformed, 406 out of range."""

from __future__ import annotations

import pytest

from filemem.api.microversion import (
    APIVersion,
    InvalidVersion,
    UnsupportedVersion,
    negotiate,
    requested,
)

MIN, MAX = APIVersion(2, 1), APIVersion(2, 37)


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"OpenStack-API-Version": "compute 2.25"}, "2.25"),
        ({"openstack-api-version": "image 2.5, compute 2.30"}, "2.30"),
        ({"X-OpenStack-Nova-API-Version": "2.9"}, "2.9"),
        # the new header wins over the legacy one, as in nova
        ({"OpenStack-API-Version": "compute 2.3", "X-OpenStack-Nova-API-Version": "2.9"}, "2.3"),
        # another service's version alone says nothing about compute
        ({"OpenStack-API-Version": "placement 1.30"}, None),
    ],
)
def test_the_requested_version_is_read_from_either_header(
    headers: dict[str, str], expected: str | None
) -> None:
    assert requested(headers) == expected


def test_no_header_gets_the_minimum_and_latest_the_maximum() -> None:
    assert negotiate(None, MIN, MAX) == MIN
    assert negotiate("latest", MIN, MAX) == MAX
    assert negotiate("2.25", MIN, MAX) == APIVersion(2, 25)


@pytest.mark.parametrize("text", ["2", "2.x", "v2.1", "2.01", "02.1", ""])
def test_a_malformed_version_is_a_400_with_nova_message(text: str) -> None:
    with pytest.raises(InvalidVersion, match="is of invalid format"):
        negotiate(text, MIN, MAX)


@pytest.mark.parametrize("text", ["2.0", "2.38", "3.0", "1.1"])
def test_a_version_out_of_range_is_a_406_naming_the_range(text: str) -> None:
    with pytest.raises(UnsupportedVersion, match=r"Minimum is 2\.1 and maximum is 2\.37"):
        negotiate(text, MIN, MAX)


def test_versions_order_numerically_not_as_text() -> None:
    assert APIVersion.parse("2.10") > APIVersion.parse("2.9")
    assert str(APIVersion.parse("2.10")) == "2.10"
