"""Microversioned, generation-aware Placement client over a pluggable transport."""

from __future__ import annotations

import logging
import random
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from filemem.exceptions import PlacementError

LOG = logging.getLogger(__name__)

DEFAULT_MICROVERSION = "1.39"
CONSUMER_TYPE = "INSTANCE"
# Placement's own defaults for omitted inventory fields (placement/handlers/inventory.py), so a
# wanted inventory that leaves them out still compares equal to what Placement reports.
INVENTORY_DEFAULTS: Mapping[str, int | float] = {
    "reserved": 0,
    "min_unit": 1,
    "max_unit": 2147483647,
    "step_size": 1,
    "allocation_ratio": 1.0,
}
CONCURRENT_UPDATE = "placement.concurrent_update"
_WRITE_METHODS = frozenset({"PUT", "POST", "DELETE", "PATCH"})

T = TypeVar("T")
Resources = dict[str, int]
Inventories = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Response:
    status: int
    body: dict[str, Any] | None
    headers: Mapping[str, str] = field(default_factory=dict)


class Transport(Protocol):
    """Carries one request to Placement; connection failures raise PlacementUnavailable."""

    endpoint: str

    def request(
        self, method: str, path: str, json_body: dict[str, Any] | None, headers: Mapping[str, str]
    ) -> Response:
        """One HTTP exchange; raises PlacementUnavailable when Placement cannot be reached."""


class PlacementUnavailable(PlacementError):
    """Placement could not be reached (connection refused, timeout, DNS)."""

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"Placement at {endpoint} is unavailable: {reason}")
        self.endpoint = endpoint
        self.reason = reason


class PlacementApiError(PlacementError):
    """Placement answered 4xx/5xx; its status, error code and detail are kept."""

    def __init__(self, method: str, path: str, status: int, detail: str, code: str | None) -> None:
        super().__init__(f"Placement {method} {path} returned {status}: {detail}", status)
        self.method = method
        self.path = path
        self.detail = detail
        self.code = code


class PlacementConflict(PlacementApiError):
    """409 that is neither a generation race nor a capacity shortfall."""


class ResourceProviderNameConflict(PlacementConflict):
    """Another resource provider (different uuid) already carries the wanted name."""


class GenerationConflict(PlacementConflict):
    """A provider generation kept changing under us; raised once retries are exhausted."""


class ConsumerGenerationConflict(GenerationConflict):
    """A consumer's allocations kept changing under us; raised once retries are exhausted."""


class InsufficientCapacity(PlacementConflict):
    """A claim does not fit the provider's inventory; Placement's explanation is kept."""


@dataclass(frozen=True)
class ResourceProvider:
    uuid: str
    name: str
    generation: int
    parent_provider_uuid: str | None = None
    root_provider_uuid: str | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ResourceProvider:
        """A provider from Placement's JSON (GET /resource_providers/{uuid})."""
        return cls(
            uuid=body["uuid"],
            name=body["name"],
            generation=body["generation"],
            parent_provider_uuid=body.get("parent_provider_uuid"),
            root_provider_uuid=body.get("root_provider_uuid"),
        )


@dataclass(frozen=True)
class AllocationCandidates:
    """GET /allocation_candidates, with each request flattened to {rp_uuid: resources}."""

    allocation_requests: list[dict[str, Resources]]
    provider_summaries: dict[str, dict[str, Any]]


def normalize_inventories(inventories: Mapping[str, Mapping[str, Any]]) -> Inventories:
    """Fill Placement's defaults in so wanted and reported inventories compare fairly."""
    normal: Inventories = {}
    for rc, inv in inventories.items():
        record = {
            **INVENTORY_DEFAULTS,
            **{k: v for k, v in inv.items() if k in ("total", *INVENTORY_DEFAULTS)},
        }
        record["allocation_ratio"] = float(record["allocation_ratio"])
        normal[rc] = record
    return normal


def _error_of(resp: Response) -> tuple[str, str | None]:
    """Placement's own error detail and code, from {"errors": [{...}]} when present."""
    errors = (resp.body or {}).get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        first = errors[0]
        detail = str(first.get("detail") or first.get("title") or "")
        return " ".join(detail.split()), first.get("code")
    return f"HTTP {resp.status}", None


class _Retry(Exception):
    """Internal: a generation race worth re-reading and retrying."""

    def __init__(self, error: GenerationConflict) -> None:
        super().__init__(str(error))
        self.error = error


class PlacementClient:
    """Talks to Placement at a pinned microversion; counts requests so tests can assert writes."""

    def __init__(
        self,
        transport: Transport,
        *,
        microversion: str = DEFAULT_MICROVERSION,
        max_retries: int = 8,
        backoff_base: float = 0.02,
        backoff_max: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.transport = transport
        self.microversion = microversion
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sleep = sleep
        self._jitter = jitter
        self.request_count = 0
        self.method_counts: Counter[str] = Counter()

    @property
    def endpoint(self) -> str:
        """Where requests go (a URL, or a description of the embedded app)."""
        return self.transport.endpoint

    @property
    def write_count(self) -> int:
        """POST/PUT/DELETE requests sent so far (a no-change sync must send none)."""
        return sum(self.method_counts[m] for m in _WRITE_METHODS)

    # -- plumbing -------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        json_body: dict[str, Any] | None = None,
        *,
        ok: Iterable[int] = (200,),
    ) -> Response:
        """One request; statuses outside `ok` raise PlacementApiError (or a subclass)."""
        headers = {
            "OpenStack-API-Version": f"placement {self.microversion}",
            "Accept": "application/json",
        }
        if json_body is not None:
            headers["Content-Type"] = "application/json"
        self.request_count += 1
        self.method_counts[method] += 1
        resp = self.transport.request(method, path, json_body, headers)
        if resp.status in set(ok):
            return resp
        detail, code = _error_of(resp)
        cls: type[PlacementApiError] = (
            PlacementConflict if resp.status == 409 else PlacementApiError
        )
        raise cls(method, path, resp.status, detail, code)

    def _backoff(self, attempt: int) -> float:
        # Equal jitter: racing writers spread out, yet each waits at least half the step.
        step = min(self.backoff_max, self.backoff_base * 2.0**attempt)
        return step / 2 + step / 2 * self._jitter()

    def _with_retries(self, what: str, attempt_once: Callable[[], T]) -> T:
        """Run attempt_once (which re-reads generations itself) until no race, bounded."""
        for attempt in range(self.max_retries + 1):
            try:
                return attempt_once()
            except _Retry as race:
                if attempt >= self.max_retries:
                    raise race.error from None
                delay = self._backoff(attempt)
                LOG.debug("%s: %s; retry %d in %.3fs", what, race.error.detail, attempt + 1, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def _put_with_generation(self, path: str, body: dict[str, Any]) -> None:
        """PUT a provider-generation-guarded body; a generation race becomes _Retry."""
        try:
            self.request("PUT", path, body)
        except PlacementConflict as exc:
            if exc.code != CONCURRENT_UPDATE:
                raise
            raise _Retry(GenerationConflict("PUT", path, 409, exc.detail, exc.code)) from exc

    def _at_least(self, major: int, minor: int) -> bool:
        have = tuple(int(part) for part in self.microversion.split("."))
        return have >= (major, minor)

    # -- resource providers ---------------------------------------------------------------

    def get_resource_provider(self, uuid: str) -> ResourceProvider | None:
        """The provider, or None when Placement does not know it."""
        resp = self.request("GET", f"/resource_providers/{uuid}", ok=(200, 404))
        if resp.status == 404 or resp.body is None:
            return None
        return ResourceProvider.from_body(resp.body)

    def get_provider_by_name(self, name: str) -> ResourceProvider | None:
        """The provider named `name` (names are unique in Placement), or None."""
        query = urllib.parse.urlencode({"name": name})
        body = self.request("GET", f"/resource_providers?{query}").body or {}
        providers = body.get("resource_providers") or []
        return ResourceProvider.from_body(providers[0]) if providers else None

    def ensure_resource_provider(self, uuid: str, name: str) -> ResourceProvider:
        """The provider with this uuid, created under `name` if missing (never renamed)."""
        existing = self.get_resource_provider(uuid)
        if existing is not None:
            return existing
        try:
            resp = self.request("POST", "/resource_providers", {"uuid": uuid, "name": name})
        except PlacementConflict as exc:
            # Someone may have created the very same provider since our GET.
            raced = self.get_resource_provider(uuid)
            if raced is not None:
                return raced
            other = self.get_provider_by_name(name)
            owner = f" (uuid {other.uuid})" if other else ""
            raise ResourceProviderNameConflict(
                "POST",
                "/resource_providers",
                409,
                f"a resource provider named {name!r}{owner} already exists, so provider {uuid} "
                f"cannot take that name; delete or rename the old one. Placement said: "
                f"{exc.detail}",
                exc.code,
            ) from exc
        assert resp.body is not None
        return ResourceProvider.from_body(resp.body)

    def delete_resource_provider(self, uuid: str) -> bool:
        """Delete the provider; False when it did not exist. Refused (409) while it has
        allocations."""
        resp = self.request("DELETE", f"/resource_providers/{uuid}", ok=(204, 404))
        return resp.status == 204

    # -- inventories ----------------------------------------------------------------------

    def get_inventories(self, rp_uuid: str) -> tuple[int, Inventories]:
        """(provider generation, inventories by resource class)."""
        body = self.request("GET", f"/resource_providers/{rp_uuid}/inventories").body or {}
        return body["resource_provider_generation"], dict(body.get("inventories") or {})

    def set_inventories(self, rp_uuid: str, inventories: Mapping[str, Mapping[str, Any]]) -> bool:
        """Make the provider's inventory exactly `inventories`; True if a write was needed."""
        wanted = normalize_inventories(inventories)

        def attempt() -> bool:
            generation, current = self.get_inventories(rp_uuid)
            if normalize_inventories(current) == wanted:
                return False
            body = {"resource_provider_generation": generation, "inventories": wanted}
            self._put_with_generation(f"/resource_providers/{rp_uuid}/inventories", body)
            return True

        return self._with_retries(f"set inventories of {rp_uuid}", attempt)

    # -- traits ---------------------------------------------------------------------------

    def get_traits(self, rp_uuid: str) -> tuple[int, set[str]]:
        """(provider generation, its traits)."""
        body = self.request("GET", f"/resource_providers/{rp_uuid}/traits").body or {}
        return body["resource_provider_generation"], set(body.get("traits") or [])

    def ensure_custom_trait(self, name: str) -> None:
        """Create CUSTOM_* trait `name` (standard traits come from os-traits, already there)."""
        self.request("PUT", f"/traits/{name}", ok=(201, 204))

    def set_traits(self, rp_uuid: str, traits: Iterable[str]) -> bool:
        """Make the provider's traits exactly `traits`; True if a write was needed."""
        wanted = set(traits)
        created: set[str] = set()

        def attempt() -> bool:
            generation, current = self.get_traits(rp_uuid)
            if current == wanted:
                return False
            for name in sorted(wanted - current - created):
                if name.startswith("CUSTOM_"):
                    self.ensure_custom_trait(name)
                    created.add(name)
            body = {"resource_provider_generation": generation, "traits": sorted(wanted)}
            self._put_with_generation(f"/resource_providers/{rp_uuid}/traits", body)
            return True

        return self._with_retries(f"set traits of {rp_uuid}", attempt)

    # -- allocations ----------------------------------------------------------------------

    def get_allocations(self, consumer_uuid: str) -> tuple[int | None, dict[str, Resources]]:
        """(consumer generation, {rp_uuid: resources}); generation None = no such consumer."""
        body = self.request("GET", f"/allocations/{consumer_uuid}").body or {}
        allocations = {
            rp: dict(alloc.get("resources") or {})
            for rp, alloc in (body.get("allocations") or {}).items()
        }
        return body.get("consumer_generation"), allocations

    def put_allocations(
        self,
        consumer_uuid: str,
        allocations: Mapping[str, Mapping[str, int]],
        project_id: str,
        user_id: str,
        consumer_generation: int | None,
        consumer_type: str = CONSUMER_TYPE,
    ) -> None:
        """Replace the consumer's allocations (no retry; see claim())."""
        body: dict[str, Any] = {
            "allocations": {rp: {"resources": dict(res)} for rp, res in allocations.items()},
            "project_id": project_id,
            "user_id": user_id,
        }
        if self._at_least(1, 28):
            body["consumer_generation"] = consumer_generation
        if self._at_least(1, 38):
            body["consumer_type"] = consumer_type
        try:
            self.request("PUT", f"/allocations/{consumer_uuid}", body, ok=(204,))
        except PlacementConflict as exc:
            if exc.code == CONCURRENT_UPDATE:
                raise ConsumerGenerationConflict(
                    exc.method, exc.path, 409, exc.detail, exc.code
                ) from exc
            if "Unable to allocate inventory" in exc.detail:
                raise InsufficientCapacity(exc.method, exc.path, 409, exc.detail, exc.code) from exc
            raise

    def claim(
        self,
        consumer_uuid: str,
        rp_uuid: str,
        resources: Mapping[str, int],
        project_id: str,
        user_id: str,
    ) -> bool:
        """Allocate `resources` on `rp_uuid` to the consumer, replacing what it held.

        Returns False when the consumer already held exactly that (nothing written), True
        after a write. Raises InsufficientCapacity when it does not fit.
        """
        wanted = {rp_uuid: dict(resources)}

        def attempt() -> bool:
            generation, current = self.get_allocations(consumer_uuid)
            if current == wanted:
                return False
            try:
                self.put_allocations(consumer_uuid, wanted, project_id, user_id, generation)
            except ConsumerGenerationConflict as exc:
                # Covers both a stale consumer generation and Placement's own provider race.
                raise _Retry(exc) from exc
            return True

        return self._with_retries(f"claim for {consumer_uuid}", attempt)

    def move_allocations(
        self,
        consumers: Mapping[str, Mapping[str, Mapping[str, int]]],
        generations: Mapping[str, int | None],
        project_id: str,
        user_id: str,
        consumer_types: Mapping[str, str] | None = None,
    ) -> None:
        """Replace several consumers' allocations at once (POST /allocations, 1.13+): all or
        none are written, so an allocation moved from one consumer to another is never counted
        twice or not at all. An empty mapping deletes that consumer's allocations.

        Raises ConsumerGenerationConflict on a race, InsufficientCapacity when it does not fit.
        """
        body: dict[str, Any] = {}
        for consumer, allocations in consumers.items():
            entry: dict[str, Any] = {
                "allocations": {rp: {"resources": dict(res)} for rp, res in allocations.items()},
                "project_id": project_id,
                "user_id": user_id,
                "consumer_generation": generations.get(consumer),
            }
            if self._at_least(1, 38):
                entry["consumer_type"] = (consumer_types or {}).get(consumer, CONSUMER_TYPE)
            body[consumer] = entry
        try:
            self.request("POST", "/allocations", body, ok=(204,))
        except PlacementConflict as exc:
            if exc.code == CONCURRENT_UPDATE:
                raise ConsumerGenerationConflict(
                    exc.method, exc.path, 409, exc.detail, exc.code
                ) from exc
            if "Unable to allocate inventory" in exc.detail:
                raise InsufficientCapacity(exc.method, exc.path, 409, exc.detail, exc.code) from exc
            raise

    def delete_allocations(self, consumer_uuid: str) -> bool:
        """Drop every allocation of the consumer; False if it had none (already gone)."""
        resp = self.request("DELETE", f"/allocations/{consumer_uuid}", ok=(204, 404))
        return resp.status == 204

    # -- usage and candidates -------------------------------------------------------------

    def get_usages(self, rp_uuid: str) -> Resources:
        """Amounts allocated on the provider, by resource class."""
        body = self.request("GET", f"/resource_providers/{rp_uuid}/usages").body or {}
        return dict(body.get("usages") or {})

    def get_provider_allocations(self, rp_uuid: str) -> dict[str, Resources]:
        """Every consumer's allocation on the provider: {consumer uuid: {class: amount}}."""
        body = self.request("GET", f"/resource_providers/{rp_uuid}/allocations").body or {}
        return {
            consumer: dict(alloc.get("resources") or {})
            for consumer, alloc in (body.get("allocations") or {}).items()
        }

    def allocation_candidates(
        self,
        resources: Mapping[str, int],
        required_traits: Iterable[str] = (),
        forbidden_traits: Iterable[str] = (),
        limit: int | None = None,
        member_of: Iterable[str] = (),
        in_tree: str | None = None,
    ) -> AllocationCandidates:
        """Providers for `resources`: traits, member_of ("in:a,b", "!in:c"), in_tree."""
        params = [("resources", ",".join(f"{rc}:{n}" for rc, n in sorted(resources.items())))]
        traits = sorted(required_traits) + [f"!{t}" for t in sorted(forbidden_traits)]
        if traits:
            params.append(("required", ",".join(traits)))
        extra = [("member_of", v) for v in member_of] + [("in_tree", t) for t in [in_tree] if t]
        params += extra
        if limit is not None:
            params.append(("limit", str(limit)))
        query = urllib.parse.urlencode(params, safe=":,!")
        body = self.request("GET", f"/allocation_candidates?{query}").body or {}
        requests = [
            {rp: dict(a.get("resources") or {}) for rp, a in (req.get("allocations") or {}).items()}
            for req in body.get("allocation_requests") or []
        ]
        return AllocationCandidates(requests, dict(body.get("provider_summaries") or {}))
