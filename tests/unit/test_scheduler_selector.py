"""Scheduler.select_and_claim against an in-memory Placement: order, races, reasons, threads."""

from __future__ import annotations

import threading
import uuid as uuidlib
from collections.abc import Iterable, Mapping
from typing import Any

import pytest
from oslo_config import cfg

from filemem.conf import scheduler as scheduler_conf
from filemem.placement.client import (
    AllocationCandidates,
    ConsumerGenerationConflict,
    InsufficientCapacity,
    PlacementApiError,
    PlacementClient,
    PlacementUnavailable,
    Response,
)
from filemem.scheduler import (
    HostRecord,
    NoValidHost,
    RequestSpec,
    Scheduler,
    SchedulerSettings,
)
from filemem.scheduler import cache as cache_module
from filemem.scheduler.host_state import Inventory
from filemem.scheduler.manager import UNKNOWN_HOST

FB = "COMPUTE_MEM_BACKING_FILE"


class NoTransport:
    endpoint = "fake"

    def request(
        self, method: str, path: str, json_body: dict[str, Any] | None, headers: Mapping[str, str]
    ) -> Response:
        raise AssertionError("the fake answers everything itself")


class FakePlacement(PlacementClient):
    """Just enough Placement: capacity checks on claims, summaries, per-provider reads."""

    def __init__(self) -> None:
        super().__init__(NoTransport())
        self.inventories: dict[str, dict[str, dict[str, Any]]] = {}
        self.traits: dict[str, set[str]] = {}
        self.allocations: dict[str, tuple[str, dict[str, int]]] = {}
        self.calls: list[str] = []
        self.down = False
        self._lock = threading.Lock()

    def add(
        self,
        uuid: str,
        memory: int,
        *,
        traits: Iterable[str] = (),
        vcpus: int = 16,
        **memory_fields: Any,
    ) -> None:
        self.inventories[uuid] = {
            "MEMORY_MB": {"total": memory, **memory_fields},
            "VCPU": {"total": vcpus},
        }
        self.traits[uuid] = set(traits)

    def usage(self, uuid: str) -> dict[str, int]:
        used: dict[str, int] = {}
        for rp, resources in self.allocations.values():
            if rp == uuid:
                for rc, n in resources.items():
                    used[rc] = used.get(rc, 0) + n
        return used

    def _fits(self, uuid: str, resources: Mapping[str, int]) -> bool:
        used = self.usage(uuid)
        for rc, n in resources.items():
            inv = self.inventories[uuid].get(rc)
            if inv is None or n > Inventory.from_placement(inv).capacity - used.get(rc, 0):
                return False
        return True

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self.down:
            raise PlacementUnavailable("fake", "down")

    def allocation_candidates(
        self,
        resources: Mapping[str, int],
        required_traits: Iterable[str] = (),
        forbidden_traits: Iterable[str] = (),
        limit: int | None = None,
        member_of: Iterable[str] = (),
        in_tree: str | None = None,
    ) -> AllocationCandidates:
        # Zones (member_of, in_tree) are proven against real Placement: test_api_server_zones.
        assert not member_of and in_tree is None
        self._call("candidates")
        summaries: dict[str, dict[str, Any]] = {}
        for uuid in self.inventories:
            if self.traits[uuid] & set(forbidden_traits) or not self._fits(uuid, resources):
                continue
            used = self.usage(uuid)
            summaries[uuid] = {
                "traits": sorted(self.traits[uuid]),
                "resources": {
                    rc: {
                        "capacity": Inventory.from_placement(inv).capacity,
                        "used": used.get(rc, 0),
                    }
                    for rc, inv in self.inventories[uuid].items()
                },
            }
        return AllocationCandidates([{u: dict(resources)} for u in summaries], summaries)

    def put_allocations(
        self,
        consumer_uuid: str,
        allocations: Mapping[str, Mapping[str, int]],
        project_id: str,
        user_id: str,
        consumer_generation: int | None,
        consumer_type: str = "INSTANCE",
    ) -> None:
        self._call("put")
        with self._lock:
            if consumer_uuid in self.allocations and consumer_generation is None:
                raise ConsumerGenerationConflict(
                    "PUT", "/allocations", 409, "exists", "placement.concurrent_update"
                )
            ((rp, resources),) = allocations.items()
            if rp not in self.inventories:
                raise PlacementApiError(
                    "PUT",
                    "/allocations",
                    400,
                    f"resource provider '{rp}' that does not exist",
                    None,
                )
            held = self.allocations.pop(consumer_uuid, None)
            if not self._fits(rp, resources):
                if held is not None:
                    self.allocations[consumer_uuid] = held
                raise InsufficientCapacity(
                    "PUT", "/allocations", 409, "Unable to allocate inventory", None
                )
            self.allocations[consumer_uuid] = (rp, dict(resources))

    def claim(
        self,
        consumer_uuid: str,
        rp_uuid: str,
        resources: Mapping[str, int],
        project_id: str,
        user_id: str,
    ) -> bool:
        self._call("claim")
        self.put_allocations(consumer_uuid, {rp_uuid: resources}, project_id, user_id, 1)
        return True

    def get_inventories(self, rp_uuid: str) -> tuple[int, dict[str, dict[str, Any]]]:
        self._call("inventories")
        if rp_uuid not in self.inventories:
            raise PlacementApiError("GET", "/x", 404, "not found", None)
        return 1, dict(self.inventories[rp_uuid])

    def get_usages(self, rp_uuid: str) -> dict[str, int]:
        self._call("usages")
        return self.usage(rp_uuid)

    def get_traits(self, rp_uuid: str) -> tuple[int, set[str]]:
        self._call("traits")
        return 1, set(self.traits[rp_uuid])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def spec(memory_mb: int = 1024, page_size: str | None = None, uuid: str = "") -> RequestSpec:
    extra = {"hw:mem_page_size": page_size} if page_size else {}
    return RequestSpec(uuid or str(uuidlib.uuid4()), "p", "u", memory_mb, 1, 0, extra)


def make(
    placement: FakePlacement, records: list[HostRecord], strategy: str = "cache", **settings: Any
) -> Scheduler:
    return Scheduler(
        placement,
        lambda: list(records),
        SchedulerSettings(strategy=strategy, **settings),
        clock=Clock(),
    )


@pytest.fixture
def two_hosts() -> tuple[FakePlacement, list[HostRecord]]:
    placement = FakePlacement()
    placement.add("rp-fb", 8192, traits=[FB])
    placement.add("rp-plain", 4096)
    return placement, [HostRecord("fb", "rp-fb"), HostRecord("plain", "rp-plain")]


STRATEGIES = ["cache", "placement"]


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_most_free_memory_first_and_huge_pages_avoid_file_backed(
    two_hosts: tuple[FakePlacement, list[HostRecord]], strategy: str
) -> None:
    scheduler = make(*two_hosts, strategy=strategy)
    assert scheduler.select_and_claim(spec()).host == "fb"
    assert scheduler.select_and_claim(spec(page_size="large")).host == "plain"


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_only_file_backed_host_left_means_no_valid_host(
    two_hosts: tuple[FakePlacement, list[HostRecord]], strategy: str
) -> None:
    placement, records = two_hosts
    scheduler = make(placement, [records[0]], strategy=strategy)
    with pytest.raises(NoValidHost) as refused:
        scheduler.select_and_claim(spec(page_size="large"))
    assert str(refused.value) == (
        "No valid host: 1 host; 1 has COMPUTE_MEM_BACKING_FILE but the flavor asks for huge "
        "pages (hw:mem_page_size=large)"
    )
    assert "put" not in placement.calls


def test_claims_are_counted_locally_so_guests_spread(
    two_hosts: tuple[FakePlacement, list[HostRecord]],
) -> None:
    placement, records = two_hosts
    scheduler = make(placement, records)
    hosts = [scheduler.select_and_claim(spec(2048)).host for _ in range(4)]
    assert hosts == ["fb", "fb", "plain", "fb"]  # 8192/4096 -> 6144 -> 4096 (tie) ...
    assert placement.calls.count("candidates") == 1  # one load, no re-read per request


def test_lost_race_refreshes_that_host_and_moves_on(
    two_hosts: tuple[FakePlacement, list[HostRecord]],
) -> None:
    placement, records = two_hosts
    scheduler = make(placement, records)
    scheduler.cache.refresh()
    placement.allocations["intruder"] = ("rp-fb", {"MEMORY_MB": 8000})
    assert scheduler.select_and_claim(spec(1024)).host == "plain"
    assert placement.calls.count("put") == 2
    assert scheduler.cache.stats.host_refreshes == 1
    assert placement.usage("rp-fb") == {"MEMORY_MB": 8000}
    keys = scheduler.cache.inspect(lambda order: [(h.provider_uuid, h.sort_key) for h in order])
    assert sorted(keys, key=lambda k: k[1]) == keys
    assert sorted(uuid for uuid, _ in keys) == ["rp-fb", "rp-plain"]


def test_never_refused_on_stale_data(two_hosts: tuple[FakePlacement, list[HostRecord]]) -> None:
    placement, records = two_hosts
    placement.allocations["old"] = ("rp-plain", {"MEMORY_MB": 4096})
    scheduler = make(placement, [records[1]])
    scheduler.cache.refresh()
    del placement.allocations["old"]  # freed behind the cache's back
    scheduler._clock.now += 1  # type: ignore[attr-defined]
    assert scheduler.select_and_claim(spec(4096)).host == "plain"
    assert placement.calls.count("candidates") == 2


def test_no_valid_host_reason_after_filling_exactly(
    two_hosts: tuple[FakePlacement, list[HostRecord]],
) -> None:
    placement, records = two_hosts
    scheduler = make(placement, [records[1]])
    scheduler.select_and_claim(spec(3072))
    with pytest.raises(NoValidHost, match=r"1 host; 1 lacks MEMORY_MB 2048 \(free 1024\)$"):
        scheduler.select_and_claim(spec(2048))


def test_gives_up_after_max_attempts(two_hosts: tuple[FakePlacement, list[HostRecord]]) -> None:
    placement, records = two_hosts
    scheduler = make(placement, records, max_attempts=1)
    scheduler.cache.refresh()
    placement.allocations["intruder"] = ("rp-fb", {"MEMORY_MB": 8192})
    with pytest.raises(NoValidHost, match="gave up after 1 refused claims"):
        scheduler.select_and_claim(spec())


def test_a_retried_request_replaces_its_own_allocation(
    two_hosts: tuple[FakePlacement, list[HostRecord]],
) -> None:
    placement, records = two_hosts
    scheduler = make(placement, records)
    first = scheduler.select_and_claim(spec(1024, uuid="inst-1"))
    scheduler.select_and_claim(spec(1024, uuid="inst-1"))
    assert "claim" in placement.calls
    assert placement.allocations["inst-1"][1] == {"MEMORY_MB": 1024, "VCPU": 1}
    assert first.provider_uuid == "rp-fb"


def test_provider_gone_from_placement_tries_the_next(
    two_hosts: tuple[FakePlacement, list[HostRecord]],
) -> None:
    placement, records = two_hosts
    scheduler = make(placement, records)
    scheduler.cache.refresh()
    del placement.inventories["rp-fb"]
    assert scheduler.select_and_claim(spec()).host == "plain"
    with pytest.raises(NoValidHost, match="1 has no resource provider in Placement"):
        scheduler.select_and_claim(spec(4096))


def test_placement_down_propagates_and_releases_the_reservation(
    two_hosts: tuple[FakePlacement, list[HostRecord]],
) -> None:
    placement, records = two_hosts
    scheduler = make(placement, records)
    scheduler.cache.refresh()
    placement.down = True
    with pytest.raises(PlacementUnavailable):
        scheduler.select_and_claim(spec(8192))
    placement.down = False
    assert scheduler.select_and_claim(spec(8192)).host == "fb"


def test_disabled_host_is_skipped_after_invalidate(
    two_hosts: tuple[FakePlacement, list[HostRecord]],
) -> None:
    placement, records = two_hosts
    scheduler = make(placement, records)
    scheduler.cache.refresh()
    records[0] = HostRecord("fb", "rp-fb", disabled=True)
    scheduler.invalidate_hosts()
    assert scheduler.select_and_claim(spec()).host == "plain"
    placement.add("rp-new", 65536)
    records.append(HostRecord("new", "rp-new"))
    scheduler.invalidate_hosts()
    assert scheduler.select_and_claim(spec()).host == "new"


def test_due_refresh_runs_in_the_background(
    two_hosts: tuple[FakePlacement, list[HostRecord]],
) -> None:
    placement, records = two_hosts
    scheduler = make(placement, records, refresh_interval=30)
    scheduler.cache.refresh()
    placement.allocations["intruder"] = ("rp-fb", {"MEMORY_MB": 8192})
    scheduler._clock.now += 31  # type: ignore[attr-defined]
    scheduler.cache.ensure_loaded()
    scheduler.close()
    assert placement.calls.count("candidates") == 2
    assert scheduler.select_and_claim(spec()).host == "plain"
    assert placement.calls.count("put") == 1  # the cache knew: no refused claim


def test_threads_never_overcommit() -> None:
    placement = FakePlacement()
    placement.add("rp-a", 2048)
    placement.add("rp-b", 1024)
    scheduler = make(placement, [HostRecord("a", "rp-a"), HostRecord("b", "rp-b")])
    results: list[str] = []

    def boot() -> None:
        try:
            results.append(scheduler.select_and_claim(spec(1024)).host)
        except NoValidHost:
            results.append("none")

    threads = [threading.Thread(target=boot) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["a", "a", "b"] + ["none"] * 5
    assert placement.usage("rp-a") == {"MEMORY_MB": 2048, "VCPU": 2}


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="strategy"):
        SchedulerSettings(strategy="random")
    with pytest.raises(ValueError):
        SchedulerSettings(max_attempts=0)


def test_hosts_the_bulk_read_cannot_see_keep_their_single_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    placement = FakePlacement()
    placement.add("rp-a", 4096, step_size=512)  # refuses the 1 MB the bulk read asks for
    scheduler = make(placement, [HostRecord("a", "rp-a")])
    original = placement.allocation_candidates

    def blind(resources: Mapping[str, int], *args: Any, **kwargs: Any) -> AllocationCandidates:
        found = original(resources, *args, **kwargs)
        if resources.get("MEMORY_MB") == 1:
            return AllocationCandidates([], {})
        return found

    placement.allocation_candidates = blind  # type: ignore[method-assign]
    scheduler.cache.refresh()  # one left out: read on its own
    assert placement.calls.count("inventories") == 1
    monkeypatch.setattr(cache_module, "MAX_SINGLE_READS", 0)  # as if thousands were left out
    scheduler.cache.refresh()
    assert placement.calls.count("inventories") == 1
    assert scheduler.select_and_claim(spec(1024)).host == "a"


def test_settings_from_the_scheduler_group() -> None:
    conf = cfg.ConfigOpts()
    conf.register_opts(scheduler_conf.OPTS, group=scheduler_conf.GROUP)
    conf([], default_config_files=[])
    assert SchedulerSettings.from_conf(conf) == SchedulerSettings()
    conf.set_override("strategy", "placement", group="scheduler")
    conf.set_override("host_subset_size", 3, group="scheduler")
    settings = SchedulerSettings.from_conf(conf)
    assert (settings.strategy, settings.host_subset_size) == ("placement", 3)
    scheduler = Scheduler.from_conf(conf, FakePlacement(), lambda: [])
    assert scheduler.settings == settings


def test_in_place_refusal_reads_the_hosts_again_for_one_it_does_not_know(
    two_hosts: tuple[FakePlacement, list[HostRecord]],
) -> None:
    """A resize's check on a host another API process registered after this cache loaded
    finds it (one re-read of the hosts) instead of calling it disabled or down."""
    placement, records = two_hosts
    scheduler = make(placement, records)
    scheduler.cache.refresh()
    assert scheduler.refusal_in_place(spec(2048), "rp-plain") is None
    refused = scheduler.refusal_in_place(spec(2048, page_size="large"), "rp-fb")
    assert refused is not None and refused.startswith(f"has {FB}")
    placement.add("rp-late", 4096, traits=[FB])
    records.append(HostRecord("late", "rp-late"))  # no invalidate_hosts() in this process
    assert scheduler.refusal_in_place(spec(2048), "rp-late") is None
    refused = scheduler.refusal_in_place(spec(2048, page_size="large"), "rp-late")
    assert refused is not None and refused.startswith(f"has {FB}")
    assert scheduler.refusal_in_place(spec(), "rp-gone") == UNKNOWN_HOST
