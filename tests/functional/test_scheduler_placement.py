"""The scheduler against a real standalone Placement: traits, capacity, lost races, threads."""

from __future__ import annotations

import threading
import uuid as uuidlib
from collections.abc import Iterator

import pytest

from filemem.placement.client import PlacementClient
from filemem.placement.http import HttpTransport
from filemem.scheduler import (
    HostRecord,
    NoValidHost,
    RequestSpec,
    Scheduler,
    SchedulerSettings,
    Selection,
)
from tests.functional.placement_fixtures import StandalonePlacement

FB = "COMPUTE_MEM_BACKING_FILE"
STRATEGIES = ["cache", "placement"]


@pytest.fixture(scope="module")
def placement(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with StandalonePlacement(tmp_path_factory.mktemp("placement")) as url:
        yield url


def new_client(url: str) -> PlacementClient:
    return PlacementClient(HttpTransport.with_token(url, "admin"))


@pytest.fixture
def client(placement: str) -> PlacementClient:
    return new_client(placement)


def register(client: PlacementClient, memory_mb: int, *, file_backed: bool = False) -> HostRecord:
    """A compute host as the tracker reports it (inventory, traits), unique to this test."""
    uuid = str(uuidlib.uuid4())
    name = f"{'fb' if file_backed else 'plain'}-{uuid[:8]}"
    client.ensure_resource_provider(uuid, name)
    client.set_inventories(
        uuid, {"MEMORY_MB": {"total": memory_mb, "allocation_ratio": 1.0}, "VCPU": {"total": 16}}
    )
    if file_backed:
        client.set_traits(uuid, [FB])
    return HostRecord(name, uuid)


def scheduler(client: PlacementClient, *records: HostRecord, strategy: str = "cache") -> Scheduler:
    return Scheduler(client, lambda: list(records), SchedulerSettings(strategy=strategy))


def spec(memory_mb: int = 1024, huge_pages: bool = False) -> RequestSpec:
    extra = {"hw:mem_page_size": "large"} if huge_pages else {}
    return RequestSpec(str(uuidlib.uuid4()), "proj", "user", memory_mb, 1, 0, extra)


def allocated(client: PlacementClient, request: RequestSpec) -> dict[str, dict[str, int]]:
    return client.get_allocations(request.instance_uuid)[1]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_huge_pages_land_on_the_host_without_file_backed_memory(
    client: PlacementClient, strategy: str
) -> None:
    fb, plain = register(client, 8192, file_backed=True), register(client, 4096)
    chosen = scheduler(client, fb, plain, strategy=strategy)
    huge = spec(huge_pages=True)
    assert chosen.select_and_claim(huge) == Selection(plain.host, plain.provider_uuid)
    assert allocated(client, huge) == {plain.provider_uuid: {"MEMORY_MB": 1024, "VCPU": 1}}
    assert chosen.select_and_claim(spec()).host == fb.host  # most free memory


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_only_a_file_backed_host_means_no_valid_host(
    client: PlacementClient, strategy: str
) -> None:
    fb = register(client, 8192, file_backed=True)
    huge = spec(huge_pages=True)
    with pytest.raises(NoValidHost) as refused:
        scheduler(client, fb, strategy=strategy).select_and_claim(huge)
    assert "hw:mem_page_size=large" in str(refused.value)
    assert str(refused.value).startswith(f"No valid host: 1 host; 1 has {FB}")
    assert allocated(client, huge) == {}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_full_host_sends_the_next_claim_elsewhere_then_no_valid_host(
    client: PlacementClient, strategy: str
) -> None:
    a, b = register(client, 2048), register(client, 2048)
    chosen = scheduler(client, a, b, strategy=strategy)
    first, second = chosen.select_and_claim(spec(2048)), chosen.select_and_claim(spec(2048))
    assert {first.host, second.host} == {a.host, b.host}
    with pytest.raises(NoValidHost) as refused:
        chosen.select_and_claim(spec(2048))
    assert refused.value.reason == "2 hosts; 2 lack MEMORY_MB 2048 (free at most 0)"
    for record in (a, b):
        assert client.get_usages(record.provider_uuid) == {"MEMORY_MB": 2048, "VCPU": 1}


def test_a_lost_race_moves_on_without_overcommit(client: PlacementClient) -> None:
    big, small = register(client, 8192), register(client, 4096)
    chosen = scheduler(client, big, small)
    chosen.cache.refresh()
    # Another API process fills the favourite host; this cache still thinks it is empty.
    client.claim(str(uuidlib.uuid4()), big.provider_uuid, {"MEMORY_MB": 8000}, "p", "u")
    request = spec(1024)
    assert chosen.select_and_claim(request).host == small.host
    assert chosen.cache.stats.host_refreshes == 1
    assert client.get_usages(big.provider_uuid) == {"MEMORY_MB": 8000, "VCPU": 0}
    assert allocated(client, request) == {small.provider_uuid: {"MEMORY_MB": 1024, "VCPU": 1}}


def _race(schedulers: list[Scheduler], threads: int) -> list[Selection | None]:
    results: list[Selection | None] = [None] * threads
    barrier = threading.Barrier(threads)

    def boot(i: int) -> None:
        barrier.wait()
        try:
            results[i] = schedulers[i % len(schedulers)].select_and_claim(spec(1024))
        except NoValidHost:
            results[i] = None

    workers = [threading.Thread(target=boot, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    return results


@pytest.mark.parametrize("instances", [1, 2])
def test_eight_threads_for_room_of_three(placement: str, instances: int) -> None:
    client = new_client(placement)
    a, b = register(client, 2048), register(client, 1024)
    # Two instances stand for two API processes: separate clients, separate caches.
    schedulers = [scheduler(new_client(placement), a, b) for _ in range(instances)]
    for each in schedulers:
        each.cache.refresh()
    results = _race(schedulers, 8)
    placed = [r for r in results if r is not None]
    assert len(placed) == 3
    assert sorted(r.host for r in placed) == sorted([a.host, a.host, b.host])
    assert client.get_usages(a.provider_uuid) == {"MEMORY_MB": 2048, "VCPU": 2}
    assert client.get_usages(b.provider_uuid) == {"MEMORY_MB": 1024, "VCPU": 1}
