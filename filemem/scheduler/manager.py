"""Scheduler.select_and_claim: filter, weigh, claim in Placement; a lost race tries the next host.

Two strategies; bench/scheduler_scale.py measures them side by side (figures in the README,
"What scheduling costs"): the cache adds well under a millisecond to the claim itself, while
GET /allocation_candidates grows with the number of hosts.

Decision: "cache" is the default.

- "cache": pick from the host-state cache (HostStateCache) and claim with one
  PUT /allocations. Placement still refuses any claim that does not fit, so a stale cache
  costs a retry on the next host, never an over-commit.
- "placement": ask GET /allocation_candidates for every request (Placement filters by
  capacity and traits), run the same filters and weighers on its answer, claim the best.
  Exact, but its cost grows with the number of hosts, and with a single-threaded
  Placement every other request waits behind it.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Callable, Collection, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING

from filemem.exceptions import FilememError
from filemem.placement.aggregates import providers_member_of
from filemem.placement.claims import release
from filemem.placement.client import (
    ConsumerGenerationConflict,
    GenerationConflict,
    InsufficientCapacity,
    PlacementApiError,
    PlacementClient,
)
from filemem.scheduler import batch
from filemem.scheduler.cache import MAX_SINGLE_READS, HostSource, HostStateCache
from filemem.scheduler.choose import explain, first_rejection, pick
from filemem.scheduler.filters import BaseFilter, ResourcesFilter, default_filters
from filemem.scheduler.host_state import HostState, state_from_summary
from filemem.scheduler.request import PlacementRequest, RequestSpec, build_request
from filemem.scheduler.weights import BaseWeigher, Scorer, default_weighers

if TYPE_CHECKING:
    from oslo_config import cfg

LOG = logging.getLogger(__name__)

STRATEGY_CACHE = "cache"
STRATEGY_PLACEMENT = "placement"
STRATEGIES = (STRATEGY_CACHE, STRATEGY_PLACEMENT)

# host name -> the merged metadata of the host aggregates it belongs to (a key of several
# aggregates joins their values with commas: see merge_aggregate_metadata in
# filters/aggregate_extra_specs.py).
HostAggregateMetadata = Callable[[], Mapping[str, Mapping[str, str]]]


def no_aggregates() -> Mapping[str, Mapping[str, str]]:
    """The default metadata source: no host is in any aggregate."""
    return {}


@dataclass(frozen=True)
class Selection:
    """Where the guest goes: its allocation there is already claimed in Placement."""

    host: str
    provider_uuid: str


class NoValidHost(FilememError):
    """No host can take the guest; `reason` says what each group of hosts lacked."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"No valid host: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class SchedulerSettings:
    strategy: str = STRATEGY_CACHE
    refresh_interval: float = 60.0
    max_attempts: int = 10
    host_subset_size: int = 1
    max_placement_results: int = 1000
    free_memory_weight_multiplier: float = 1.0
    # Multi-create claims all its guests in one POST /allocations (strategy cache).
    batch_claims: bool = True

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown scheduler strategy {self.strategy!r}: use {STRATEGIES}")
        if self.max_attempts < 1 or self.host_subset_size < 1:
            raise ValueError("max_attempts and host_subset_size must be at least 1")

    @classmethod
    def from_conf(cls, conf: cfg.ConfigOpts) -> SchedulerSettings:
        """From the [scheduler] group (filemem.conf.scheduler), which must be registered."""
        group = conf.scheduler
        return cls(
            strategy=group.strategy,
            refresh_interval=group.refresh_interval,
            max_attempts=group.max_attempts,
            host_subset_size=group.host_subset_size,
            max_placement_results=group.max_placement_results,
            free_memory_weight_multiplier=group.free_memory_weight_multiplier,
            batch_claims=group.batch_claims,
        )


# A host the scheduler does not offer (live_services leaves out disabled and down ones).
UNKNOWN_HOST = "is disabled or down (new guests go only to enabled hosts that are up)"


class Scheduler:
    """Picks a host for a guest and claims its resources there; safe to share across threads.

    `host_source` returns the compute services (HostRecord) and must be thread-safe: it is
    called again every refresh_interval, possibly from a background thread. Call
    invalidate_hosts() after a service is added, disabled, enabled or removed to see that at
    once in this process. `host_aggregate_metadata` (thread-safe too) is called once per
    request whose flavor has aggregate requirements (AggregateInstanceExtraSpecsFilter).
    """

    def __init__(
        self,
        placement_client: PlacementClient,
        host_source: HostSource,
        settings: SchedulerSettings | None = None,
        *,
        filters: Sequence[BaseFilter] | None = None,
        weighers: Sequence[BaseWeigher] | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        host_aggregate_metadata: HostAggregateMetadata = no_aggregates,
    ) -> None:
        self.settings = settings or SchedulerSettings()
        self.host_aggregate_metadata = host_aggregate_metadata
        self.client = placement_client
        self.filters = list(filters) if filters is not None else default_filters()
        self.weighers = (
            list(weighers)
            if weighers is not None
            else default_weighers(self.settings.free_memory_weight_multiplier)
        )
        self._clock = clock
        self._rng = rng or random.Random()  # noqa: S311 - spreading load, not secrets
        self.cache = HostStateCache(
            placement_client,
            host_source,
            self.weighers,
            refresh_interval=self.settings.refresh_interval,
            clock=clock,
        )

    @classmethod
    def from_conf(
        cls,
        conf: cfg.ConfigOpts,
        placement_client: PlacementClient,
        host_source: HostSource,
        host_aggregate_metadata: HostAggregateMetadata = no_aggregates,
    ) -> Scheduler:
        return cls(
            placement_client,
            host_source,
            SchedulerSettings.from_conf(conf),
            host_aggregate_metadata=host_aggregate_metadata,
        )

    def select_and_claim(self, spec: RequestSpec) -> Selection:
        """Claim spec's resources on the best host that can take them.

        Raises NoValidHost (nothing was claimed), InvalidInput for impossible sizes, and
        PlacementError when Placement fails otherwise (nothing was claimed either).
        """
        request = self.build_request(spec)
        started = self._clock()
        if self.settings.strategy == STRATEGY_PLACEMENT:
            return self._via_placement(spec, request, started)
        return self._via_cache(spec, request, started)

    def build_request(self, spec: RequestSpec) -> PlacementRequest:
        """build_request(spec), with the hosts' aggregate metadata when the flavor needs it."""
        return self._build_requests([spec])[0]

    def _build_requests(self, specs: Sequence[RequestSpec]) -> list[PlacementRequest]:
        requests = [build_request(spec) for spec in specs]
        if not any(request.aggregate_specs for request in requests):
            return requests
        # Once for all of them: the source may be a database read.
        metadata = {host: dict(m) for host, m in self.host_aggregate_metadata().items()}
        return [dataclasses.replace(r, aggregate_metadata=metadata) for r in requests]

    def select_and_claim_many(self, specs: Sequence[RequestSpec]) -> list[Selection]:
        """Claim every spec, or none (a multi-create: nova places all its servers or none).

        With strategy cache and batch_claims, the hosts are picked together from the cache
        (each pick sees the previous ones) and claimed in one POST /allocations; otherwise, or
        when a consumer exists already, one claim at a time, undone if a later one fails.
        Raises as select_and_claim does; whatever it raises, nothing stays claimed.
        """
        requests = self._build_requests(specs)
        started = self._clock()
        batched = (
            len(specs) > 1
            and self.settings.batch_claims
            and self.settings.strategy == STRATEGY_CACHE
            and batch.one_owner(specs)
        )
        if batched:
            try:
                return self._batch_via_cache(specs, requests, started)
            except ConsumerGenerationConflict as exc:
                LOG.info("batch claim raced or met an existing consumer, one by one: %s", exc)
        return self._one_by_one(specs, requests, started)

    def refusal_in_place(self, spec: RequestSpec, provider_uuid: str) -> str | None:
        """Why the host may not run `spec` instead of what it runs now (a resize on its own
        host), in the words of the first filter that refuses; None when it may. The free-room
        filter is left out: Placement's move of the allocation counts only the growth."""
        request = self.build_request(spec)
        filters = [f for f in self.filters if not isinstance(f, ResourcesFilter)]

        def refusal(order: Sequence[HostState]) -> str | None:
            host = next((h for h in order if h.provider_uuid == provider_uuid), None)
            if host is None:
                return UNKNOWN_HOST
            rejection = first_rejection(host, request, filters)
            return None if rejection is None else rejection.singular

        self.cache.ensure_loaded()
        found = self.cache.inspect(refusal)  # under the cache's lock, as explanations are
        if found == UNKNOWN_HOST:
            # Registered through another API process since this cache last read the hosts,
            # or really disabled or down: the database says which.
            self.cache.update_records()
            found = self.cache.inspect(refusal)
        return found

    def invalidate_hosts(self) -> None:
        """Re-read host_source now (the cache's Placement data is kept)."""
        self.cache.update_records()

    def close(self, timeout: float | None = 10.0) -> None:
        """Wait for a background refresh still running."""
        self.cache.wait_for_background(timeout)

    # -- strategies --------------------------------------------------------------------------

    def _choose(
        self, request: PlacementRequest, refused: set[str], allowed: Set[str] | None = None
    ) -> Callable[[Sequence[HostState]], HostState | None]:
        def choose(order: Sequence[HostState]) -> HostState | None:
            if allowed is not None:
                order = [host for host in order if host.provider_uuid in allowed]
            if request.excluded_providers:
                order = [h for h in order if h.provider_uuid not in request.excluded_providers]
            return pick(
                order, request, self.filters, refused, self.settings.host_subset_size, self._rng
            )

        return choose

    def _allowed(self, request: PlacementRequest) -> Set[str] | None:
        """The providers request's member_of and in_tree leave (None: any), asked of
        Placement as GET /allocation_candidates would."""
        if not request.member_of and request.in_tree is None:
            return None
        allowed = providers_member_of(self.client, request.member_of)
        return allowed & {request.in_tree} if request.in_tree is not None else allowed

    def _via_cache(
        self,
        spec: RequestSpec,
        request: PlacementRequest,
        started: float,
        held: list[tuple[HostState, PlacementRequest]] | None = None,
    ) -> Selection:
        """`held`, when given, gets the host whose cached usage now counts the claim."""
        self.cache.ensure_loaded()
        refused: set[str] = set()
        allowed = self._allowed(request)
        while len(refused) < self.settings.max_attempts:
            host = self.cache.reserve(self._choose(request, refused, allowed), request.resources)
            if host is None:
                refreshed = self.cache.refreshed_at
                if refreshed is not None and refreshed >= started:
                    break
                # Never refuse on stale data: hosts may have freed room since the last read.
                self.cache.ensure_fresh(started)
                continue
            try:
                claimed = self._claim(spec, request, host.provider_uuid)
            except BaseException:
                self.cache.release(host, request.resources)
                raise
            if claimed:
                if held is not None:
                    held.append((host, request))
                return Selection(host.host, host.provider_uuid)
            self.cache.release(host, request.resources)
            refused.add(host.provider_uuid)
            self.cache.refresh_host(host.provider_uuid)
        raise self._no_valid_host(request, refused, allowed=allowed)

    def _reserve_all(
        self,
        requests: Sequence[PlacementRequest],
        refused: set[str],
        allowed: Set[str] | None = None,
    ) -> list[HostState] | None:
        """A host for each request, reserved in the cache; None (all released) if one has none."""
        hosts: list[HostState] = []
        for request in requests:
            host = self.cache.reserve(self._choose(request, refused, allowed), request.resources)
            if host is None:
                self._release_all(hosts, requests)
                return None
            hosts.append(host)
        return hosts

    def _release_all(
        self, hosts: Sequence[HostState], requests: Sequence[PlacementRequest]
    ) -> None:
        for host, request in zip(hosts, requests, strict=False):
            self.cache.release(host, request.resources)

    def _batch_via_cache(
        self, specs: Sequence[RequestSpec], requests: Sequence[PlacementRequest], started: float
    ) -> list[Selection]:
        self.cache.ensure_loaded()
        refused: set[str] = set()  # stays empty: a named host is re-read, not excluded
        # The servers of one request share its zone and forced host.
        allowed = self._allowed(requests[0])
        for _attempt in range(self.settings.max_attempts):
            hosts = self._reserve_all(requests, refused, allowed)
            if hosts is None:
                refreshed = self.cache.refreshed_at
                if refreshed is not None and refreshed >= started:
                    break
                self.cache.ensure_fresh(started)
                hosts = self._reserve_all(requests, refused, allowed)
                if hosts is None:
                    break
            try:
                named = batch.claim_all(self.client, specs, requests, hosts)
            except BaseException:
                self._release_all(hosts, requests)
                raise
            if named is None:
                return [Selection(host.host, host.provider_uuid) for host in hosts]
            self._release_all(hosts, requests)
            self._reread(named or {host.provider_uuid for host in hosts})
        raise self._no_valid_host(requests[0], refused, len(specs), allowed)

    def _reread(self, providers: Collection[str]) -> None:
        """After a refused batch: the hosts Placement named, or everything when they are many."""
        if len(providers) > MAX_SINGLE_READS:
            self.cache.refresh()
            return
        for provider_uuid in providers:
            self.cache.refresh_host(provider_uuid)

    def _one_by_one(
        self, specs: Sequence[RequestSpec], requests: Sequence[PlacementRequest], started: float
    ) -> list[Selection]:
        selections: list[Selection] = []
        held: list[tuple[HostState, PlacementRequest]] = []
        try:
            for spec, request in zip(specs, requests, strict=True):
                if self.settings.strategy == STRATEGY_PLACEMENT:
                    selections.append(self._via_placement(spec, request, started))
                else:
                    selections.append(self._via_cache(spec, request, started, held))
        except BaseException:
            for spec in specs[: len(selections)]:
                release(self.client, spec.instance_uuid)
            for host, request in held:
                self.cache.release(host, request.resources)
            raise
        return selections

    def _via_placement(
        self, spec: RequestSpec, request: PlacementRequest, started: float
    ) -> Selection:
        records = self.cache.records()
        candidates = self.client.allocation_candidates(
            request.resources,
            request.required_traits,
            request.forbidden_traits,
            limit=self.settings.max_placement_results,
            member_of=request.member_of,
            in_tree=request.in_tree,
        )
        hosts = [
            state_from_summary(records[uuid], summary)
            for uuid, summary in candidates.provider_summaries.items()
            if uuid in records
        ]
        scorer = Scorer(self.weighers, hosts)
        for ticket, host in enumerate(hosts):
            host.sort_key = (-scorer.score(host), ticket)
        hosts.sort(key=lambda h: h.sort_key)
        refused: set[str] = set()
        while len(refused) < self.settings.max_attempts:
            chosen = self._choose(request, refused)(hosts)
            if chosen is None:
                break
            if self._claim(spec, request, chosen.provider_uuid):
                return Selection(chosen.host, chosen.provider_uuid)
            refused.add(chosen.provider_uuid)
        # The candidates say nothing about hosts left out: explain from a full read.
        self.cache.ensure_fresh(started)
        raise self._no_valid_host(request, refused, allowed=self._allowed(request))

    # -- helpers -----------------------------------------------------------------------------

    def _claim(self, spec: RequestSpec, request: PlacementRequest, provider_uuid: str) -> bool:
        """True once claimed; False when Placement refused it there (room, race, provider gone)."""
        resources = dict(request.resources)
        try:
            try:
                # A new consumer needs one PUT; the GET that claim() does first is cheap next to it.
                self.client.put_allocations(
                    spec.instance_uuid,
                    {provider_uuid: resources},
                    spec.project_id,
                    spec.user_id,
                    None,
                )
            except ConsumerGenerationConflict:
                # The consumer exists (a retried request): claim() replaces what it holds.
                self.client.claim(
                    spec.instance_uuid, provider_uuid, resources, spec.project_id, spec.user_id
                )
        except (InsufficientCapacity, GenerationConflict) as exc:
            LOG.info(
                "claim for %s on %s refused, trying another host: %s",
                spec.instance_uuid,
                provider_uuid,
                exc.detail,
            )
            return False
        except PlacementApiError as exc:
            if exc.status == 400 and provider_uuid in exc.detail:
                LOG.info("provider %s is gone from Placement: %s", provider_uuid, exc.detail)
                return False
            raise
        return True

    def _no_valid_host(
        self,
        request: PlacementRequest,
        refused: set[str],
        count: int = 1,
        allowed: Set[str] | None = None,
    ) -> NoValidHost:
        def why(hosts: Sequence[HostState]) -> str:
            if allowed is None:
                return explain(hosts, request, self.filters, refused)
            inside = [host for host in hosts if host.provider_uuid in allowed]
            if not inside:
                return "no enabled compute host is in the requested availability zone or host"
            return explain(inside, request, self.filters, refused)

        reason = self.cache.inspect(why)
        if count > 1:
            reason = f"{count} guests of {request.describe()} do not fit together: {reason}"
        if len(refused) >= self.settings.max_attempts:
            reason += f"; gave up after {len(refused)} refused claims"
        LOG.info("no valid host for %s: %s", request.describe(), reason)
        return NoValidHost(reason)
