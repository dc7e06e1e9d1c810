"""Scheduler weighers: free memory spreads (or stacks), several weighers on one scale."""

from __future__ import annotations

from filemem.scheduler import HostRecord
from filemem.scheduler.host_state import HostState, state_from_provider
from filemem.scheduler.weights import BaseWeigher, FreeMemoryWeigher, Scorer


def host(name: str, memory: int, vcpus: int = 8) -> HostState:
    return state_from_provider(
        HostRecord(name, name),
        {"MEMORY_MB": {"total": memory}, "VCPU": {"total": vcpus}},
        {},
        frozenset(),
    )


class FreeVcpuWeigher(BaseWeigher):
    def raw(self, host: HostState) -> float:
        return float(host.free("VCPU"))


def best(scorer: Scorer, hosts: list[HostState]) -> str:
    return max(hosts, key=scorer.score).host


def test_free_memory_spreads_and_negative_multiplier_stacks() -> None:
    hosts = [host("a", 1024), host("b", 4096), host("c", 2048)]
    assert best(Scorer([FreeMemoryWeigher()], hosts), hosts) == "b"
    assert best(Scorer([FreeMemoryWeigher(-1.0)], hosts), hosts) == "a"


def test_weighers_are_scaled_before_summing() -> None:
    # Raw MB would drown vCPUs; scaled to [0, 1] each, a 3x multiplier on vCPUs wins.
    hosts = [host("ram", 65536, vcpus=2), host("cpu", 32768, vcpus=64)]
    assert best(Scorer([FreeMemoryWeigher(), FreeVcpuWeigher()], hosts), hosts) == "ram"
    assert best(Scorer([FreeMemoryWeigher(), FreeVcpuWeigher(3.0)], hosts), hosts) == "cpu"


def test_scale_holds_between_fits() -> None:
    hosts = [host("a", 1000), host("b", 3000)]
    scorer = Scorer([FreeMemoryWeigher()], hosts)
    assert scorer.score(hosts[0]) == 0.0 and scorer.score(hosts[1]) == 1.0
    assert scorer.score(host("c", 5000)) == 2.0
    assert Scorer([FreeMemoryWeigher()], [host("x", 7)]).score(host("x", 7)) == 0.0
