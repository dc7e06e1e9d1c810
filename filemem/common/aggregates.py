"""Pure aggregate policy: the seed's ram_allocation_ratio rule, the ratio a host gets, zones.

The file-backed memory guide says a file-backed host must run with ram_allocation_ratio 1.0
(its store cannot be over-committed); nova only documents that for aggregates. filemem
enforces it: a file-backed host never sits in an aggregate whose metadata sets
ram_allocation_ratio to anything but 1.0 (an unparsable value counts as "not 1.0").
For other hosts an aggregate's ratio is their MEMORY_MB allocation_ratio, the smallest when
several aggregates set one (what nova's AggregateRamFilter took).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

RAM_RATIO_KEY = "ram_allocation_ratio"
AZ_KEY = "availability_zone"
DEFAULT_ZONE = "nova"
FILE_BACKED_RATIO = 1.0


@dataclass(frozen=True)
class AggregateFacts:
    """What the rules need to know of one aggregate."""

    id: int
    name: str
    metadata: Mapping[str, str]


def parse_ratio(value: str) -> float | None:
    """The ratio a metadata value sets, or None when it is not a positive finite number."""
    try:
        ratio = float(value)
    except ValueError:
        return None
    return ratio if math.isfinite(ratio) and ratio > 0 else None


def breaks_file_backed(metadata: Mapping[str, str]) -> bool:
    """Whether metadata sets a ram_allocation_ratio a file-backed host cannot have."""
    if RAM_RATIO_KEY not in metadata:
        return False
    return parse_ratio(metadata[RAM_RATIO_KEY]) != FILE_BACKED_RATIO


def _why(aggregate: AggregateFacts) -> str:
    return (
        f"aggregate {aggregate.name} sets {RAM_RATIO_KEY} "
        f"{aggregate.metadata[RAM_RATIO_KEY]!r}, and file-backed memory cannot be "
        f"over-committed ({RAM_RATIO_KEY} must be 1.0)"
    )


def add_host_refusal(host: str, file_backed: bool, aggregate: AggregateFacts) -> str | None:
    """Why `host` may not join `aggregate`, or None when it may."""
    if file_backed and breaks_file_backed(aggregate.metadata):
        return f"host {host} has file-backed memory and {_why(aggregate)}"
    return None


def metadata_refusal(
    aggregate: AggregateFacts, changes: Mapping[str, str | None], file_backed_hosts: Iterable[str]
) -> str | None:
    """Why set_metadata's `changes` (None deletes a key) may not apply to an aggregate that
    holds `file_backed_hosts`, or None when they may."""
    hosts = sorted(file_backed_hosts)
    after = merge_metadata(aggregate.metadata, changes)
    if not hosts or not breaks_file_backed(after):
        return None
    facts = AggregateFacts(aggregate.id, aggregate.name, after)
    return f"{_why(facts)}, but it holds file-backed host(s) {', '.join(hosts)}"


def registration_refusal(host: str, aggregates: Iterable[AggregateFacts]) -> str | None:
    """Why `host` may not start with file-backed memory while in `aggregates`, or None."""
    bad = [aggregate for aggregate in aggregates if breaks_file_backed(aggregate.metadata)]
    if not bad:
        return None
    first = bad[0]
    return (
        f"host {host} has file-backed memory but is in aggregate {first.name} (id {first.id}): "
        f"{_why(first)}; remove the host from aggregate {first.name} or set its "
        f"{RAM_RATIO_KEY} to 1.0"
    )


def merge_metadata(
    metadata: Mapping[str, str], changes: Mapping[str, str | None]
) -> dict[str, str]:
    """nova's update_metadata: set keys, and delete those whose value is None."""
    merged = dict(metadata)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def ram_ratio(file_backed: bool, aggregates: Iterable[AggregateFacts]) -> float | None:
    """The MEMORY_MB allocation_ratio the host's aggregates give it; None when none does (the
    host's own [DEFAULT] ram_allocation_ratio applies) and on a file-backed host (whose agent
    always reports 1.0, and whose aggregates may only say 1.0)."""
    if file_backed:
        return None
    ratios = [
        ratio
        for aggregate in aggregates
        if RAM_RATIO_KEY in aggregate.metadata
        and (ratio := parse_ratio(aggregate.metadata[RAM_RATIO_KEY])) is not None
    ]
    return min(ratios) if ratios else None


def zone_conflicts(
    zone: str, aggregate_id: int, host_aggregates: Iterable[AggregateFacts]
) -> list[str]:
    """The other zones the hosts' aggregates put them in, when joining `zone` (nova's
    is_safe_to_update_az): a host is in one zone only."""
    return sorted(
        {
            other.metadata[AZ_KEY]
            for other in host_aggregates
            if other.id != aggregate_id
            and AZ_KEY in other.metadata
            and other.metadata[AZ_KEY] != zone
        }
    )


def host_zone(aggregates: Iterable[AggregateFacts]) -> str:
    """The zone a host is in: its aggregates' availability_zone, else the default "nova"."""
    zones = sorted({a.metadata[AZ_KEY] for a in aggregates if AZ_KEY in a.metadata})
    return zones[0] if zones else DEFAULT_ZONE


@dataclass(frozen=True)
class ZoneRequest:
    """A server create's availability_zone: "zone", "zone:host" or "zone::node" (admins)."""

    zone: str | None
    host: str | None = None
    node: str | None = None


def parse_zone_request(value: str) -> ZoneRequest:
    """nova's _handle_availability_zone: split the zone from a forced host and node."""
    if ":" not in value:
        return ZoneRequest(value)
    zone, host = value.split(":", 1)
    node = None
    if ":" in host:
        host, node = host.split(":", 1)
    return ZoneRequest(zone or None, host or None, node or None)
