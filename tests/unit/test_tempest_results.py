"""The Tempest ratchet (tests/tempest/results.py) on subunit streams made here."""

from __future__ import annotations

import io

import subunit

from tests.tempest.results import (
    FAILED,
    NOT_RUN,
    PASSED,
    SKIPPED,
    Expected,
    counts,
    outcomes,
    parse_subunit,
    problems,
)

CLASS = "tempest.api.compute.servers.test_x.ServersTest"


def stream(*results: tuple[str, str]) -> bytes:
    out = io.BytesIO()
    writer = subunit.StreamResultToBytes(out)
    for test_id, status in results:
        writer.status(test_id=test_id, test_status="inprogress")
        writer.status(test_id=test_id, test_status=status)
    return out.getvalue()


def test_ids_lose_their_attributes_and_a_failed_set_up_fails_its_class_tests() -> None:
    found = parse_subunit(
        stream(
            (f"{CLASS}.test_a[id-1,smoke]", "success"),
            (f"{CLASS}.test_b[id-2]", "skip"),
            ("setUpClass (tempest.api.compute.other.OtherTest)", "fail"),
            ("setUpClass (tempest.api.compute.net.NetTest)", "skip"),
        )
    )
    every = outcomes(
        [
            f"{CLASS}.test_a",
            f"{CLASS}.test_b",
            "tempest.api.compute.other.OtherTest.test_c",
            "tempest.api.compute.net.NetTest.test_d",
        ],
        found,
    )
    statuses = {name.rsplit(".", 1)[1]: o.status for name, o in every.items()}
    assert statuses == {"test_a": PASSED, "test_b": SKIPPED, "test_c": NOT_RUN, "test_d": SKIPPED}
    assert counts(every) == {PASSED: 1, FAILED: 0, NOT_RUN: 1, SKIPPED: 2}


def test_the_ratchet() -> None:
    expected = Expected(
        skip={"no network service": [f"{CLASS}.test_net*"]},
        known_failures={
            "no os-hosts": [f"{CLASS}.test_hosts", f"{CLASS}.test_fixed"],
            "unstable: races": [f"{CLASS}.test_flaky"],
        },
    )
    found = parse_subunit(
        stream(
            (f"{CLASS}.test_network", "skip"),  # allowed
            (f"{CLASS}.test_volume", "skip"),  # newly skipped
            (f"{CLASS}.test_hosts", "fail"),  # known
            (f"{CLASS}.test_fixed", "success"),  # now passes: must leave the list
            (f"{CLASS}.test_flaky", "success"),  # unstable: either way
            (f"{CLASS}.test_new", "fail"),  # newly failed
            (f"{CLASS}.test_ok", "success"),
        )
    )
    every = outcomes(list(found), found)
    found_problems = problems(every, expected)
    assert [p.split(":")[0] for p in found_problems] == [
        "now passes (remove it from known_failures)",
        "newly failed",
        "newly skipped",
    ]
    assert f"{CLASS}.test_fixed" in found_problems[0]
