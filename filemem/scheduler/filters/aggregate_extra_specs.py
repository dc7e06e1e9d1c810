"""AggregateInstanceExtraSpecsFilter: a flavor's aggregate_instance_extra_specs must match the
metadata of the host's aggregates (nova's filter of that name, same scoping and operators)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from filemem.scheduler.filters.base import BaseFilter, Rejection
from filemem.scheduler.filters.extra_specs_ops import match
from filemem.scheduler.host_state import HostState
from filemem.scheduler.request import PlacementRequest


def host_values(metadata: Mapping[str, str], key: str) -> frozenset[str]:
    """The values a host has for `key`: nova splits each aggregate's value on commas, so a
    merged value "a,b" (two aggregates, or one listing two) offers both."""
    raw = metadata.get(key)
    if not raw:
        return frozenset()
    return frozenset(part.strip() for part in raw.split(","))


def merge_aggregate_metadata(metadatas: Iterable[Mapping[str, str]]) -> dict[str, str]:
    """One host's merged metadata from each of its aggregates' (nova's
    aggregate_metadata_get_by_host): values of a key shared by several join with commas."""
    merged: dict[str, set[str]] = {}
    for metadata in metadatas:
        for key, value in metadata.items():
            merged.setdefault(key, set()).update(part.strip() for part in value.split(","))
    return {key: ",".join(sorted(values)) for key, values in merged.items()}


def passes(metadata: Mapping[str, str], requirements: Mapping[str, str]) -> str | None:
    """None when every requirement is met by one of the host's values, else the first key
    that is not (pure, for the filter and its tests)."""
    for key, requirement in requirements.items():
        values = host_values(metadata, key)
        if not any(match(value, requirement) for value in values):
            return key
    return None


class AggregateInstanceExtraSpecsFilter(BaseFilter):
    """Refuses hosts whose aggregates lack a metadata value matching a flavor requirement.

    The requirements come from the flavor (PlacementRequest.aggregate_specs); the hosts'
    metadata is read once per request by the scheduler (PlacementRequest.aggregate_metadata,
    host name -> merged metadata). A host in no aggregate meets no requirement, as in nova.
    """

    def check(self, host: HostState, request: PlacementRequest) -> Rejection | None:
        if not request.aggregate_specs:
            return None
        metadata = (request.aggregate_metadata or {}).get(host.host, {})
        failed = passes(metadata, request.aggregate_specs)
        if failed is None:
            return None
        words = f"aggregate metadata {failed} matching {request.aggregate_specs[failed]!r}"
        return Rejection(f"has no {words}", f"have no {words}")
