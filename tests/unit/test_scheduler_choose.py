"""Scheduler choice and NoValidHost reasons: weight order, exclusions, grouped refusals."""

from __future__ import annotations

import random

from filemem.scheduler import HostRecord, RequestSpec, build_request
from filemem.scheduler.choose import explain, pick
from filemem.scheduler.filters import BaseFilter, Rejection, default_filters
from filemem.scheduler.host_state import HostState, state_from_provider
from filemem.scheduler.request import PlacementRequest
from filemem.scheduler.weights import FreeMemoryWeigher, Scorer

FB = "COMPUTE_MEM_BACKING_FILE"


def request(memory_mb: int = 1024, page_size: str | None = None) -> PlacementRequest:
    extra = {"hw:mem_page_size": page_size} if page_size else {}
    return build_request(RequestSpec("i", "p", "u", memory_mb, 1, 0, extra))


def host(
    name: str, memory: int, used: int = 0, *, file_backed: bool = False, disabled: bool = False
) -> HostState:
    return state_from_provider(
        HostRecord(name, f"rp-{name}", disabled),
        {"MEMORY_MB": {"total": memory}, "VCPU": {"total": 16}},
        {"MEMORY_MB": used},
        frozenset({FB}) if file_backed else frozenset(),
    )


def ordered(*hosts: HostState) -> list[HostState]:
    scorer = Scorer([FreeMemoryWeigher()], hosts)
    for i, h in enumerate(hosts):
        h.sort_key = (-scorer.score(h), i)
    return sorted(hosts, key=lambda h: h.sort_key)


def test_pick_takes_the_best_weighed_host_that_passes() -> None:
    hosts = ordered(host("small", 2048), host("big-fb", 8192, file_backed=True), host("mid", 4096))
    assert [h.host for h in hosts] == ["big-fb", "mid", "small"]
    chosen = pick(hosts, request(), default_filters())
    assert chosen is not None and chosen.host == "big-fb"
    chosen = pick(hosts, request(page_size="large"), default_filters())
    assert chosen is not None and chosen.host == "mid"
    chosen = pick(hosts, request(), default_filters(), exclude={"rp-big-fb", "rp-mid"})
    assert chosen is not None and chosen.host == "small"
    assert pick(hosts, request(8192), default_filters(), exclude={"rp-big-fb"}) is None


def test_pick_stops_walking_once_it_has_a_host() -> None:
    checked: list[str] = []

    class Spy(BaseFilter):
        def check(self, h: HostState, r: PlacementRequest) -> Rejection | None:
            checked.append(h.host)
            return None

    hosts = ordered(*(host(f"h{i}", 1000 + i) for i in range(1000)))
    chosen = pick(hosts, request(512), [Spy()])
    assert chosen is not None and chosen.host == "h999"
    assert checked == ["h999"]


def test_subset_size_picks_among_the_best_few() -> None:
    hosts = ordered(*(host(f"h{i}", 1000 + i) for i in range(10)))
    picks = [
        pick(hosts, request(512), default_filters(), subset_size=3, rng=random.Random(seed))
        for seed in range(50)
    ]
    seen = {chosen.host for chosen in picks if chosen is not None}
    assert None not in picks
    assert seen == {"h9", "h8", "h7"}


def test_no_valid_host_reason_names_each_group() -> None:
    hosts = [host("fb", 8192, file_backed=True), host("plain", 2048, used=1024)]
    reason = explain(hosts, request(4096, page_size="large"), default_filters())
    assert reason == (
        "2 hosts; 1 has COMPUTE_MEM_BACKING_FILE but the flavor asks for huge pages "
        "(hw:mem_page_size=large); 1 lacks MEMORY_MB 4096 (free 1024)"
    )


def test_reason_counts_and_aggregates_many_hosts() -> None:
    hosts = [host(f"f{i}", 4096, used=4096 - i * 100) for i in range(5)]
    hosts += [host("off", 8192, disabled=True), host("off2", 8192, disabled=True)]
    reason = explain(hosts, request(2048), default_filters())
    assert reason == ("7 hosts; 5 lack MEMORY_MB 2048 (free at most 400); 2 are disabled")


def test_reason_for_refused_and_untried_hosts() -> None:
    hosts = [host("a", 8192), host("b", 8192)]
    reason = explain(hosts, request(), default_filters(), refused={"rp-a"})
    assert "1 was refused by Placement" in reason
    assert "1 could take it but was not tried" in reason
    assert explain([], request(), default_filters()) == ("no enabled compute hosts are registered")
