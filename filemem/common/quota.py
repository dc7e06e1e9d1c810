"""Quota arithmetic as nova does it (pure): how many servers of a flavor fit, and the refusal."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

RESOURCES = ("instances", "cores", "ram")
# A limit on each server, not counted over the project (nova's metadata_items).
PER_SERVER = ("metadata_items",)
SETTABLE = RESOURCES + PER_SERVER
UNLIMITED = -1
DEFAULT_METADATA_ITEMS = 128


class OverQuota(Exception):
    """nova's TooManyInstances: the API answers it with 403 and this message."""


@dataclass(frozen=True)
class Limits:
    instances: int
    cores: int
    ram: int
    metadata_items: int = DEFAULT_METADATA_ITEMS

    def get(self, resource: str) -> int:
        value: int = getattr(self, resource)
        return value


def effective_limits(defaults: Limits, overrides: Mapping[str, int]) -> Limits:
    """A project's own limits where set, the [quota] defaults elsewhere."""
    return Limits(**{r: overrides.get(r, defaults.get(r)) for r in SETTABLE})


def check_metadata_items(limits: Limits, count: int) -> None:
    """OverQuota (nova's MetadataLimitExceeded) when one server would hold more metadata
    items than the project's metadata_items quota."""
    allowed = limits.metadata_items
    if allowed != UNLIMITED and count > allowed:
        raise OverQuota(f"Maximum number of metadata items exceeds {allowed}")


def _headroom(limits: Limits, used: Mapping[str, int], resource: str) -> float:
    limit = limits.get(resource)
    return float("inf") if limit == UNLIMITED else limit - used[resource]


def _message(
    overs: list[str], requested: Mapping[str, str], limits: Limits, used: Mapping[str, int]
) -> str:
    join = ", ".join
    return (
        f"Quota exceeded for {join(overs)}: Requested {join(requested[r] for r in overs)}, "
        f"but already used {join(str(used[r]) for r in overs)} of "
        f"{join(str(limits.get(r)) for r in overs)} {join(overs)}"
    )


def check_deltas(limits: Limits, used: Mapping[str, int], deltas: Mapping[str, int]) -> None:
    """OverQuota when adding the positive `deltas` to `used` passes a limit (resize)."""
    overs = [
        r for r in RESOURCES if deltas.get(r, 0) > 0 and deltas[r] > _headroom(limits, used, r)
    ]
    if overs:
        _raise(overs, {r: str(deltas.get(r, 0)) for r in RESOURCES}, limits, used)


def check_resize(
    limits: Limits,
    used: Mapping[str, int],
    old: tuple[int, int],
    new: tuple[int, int],
) -> None:
    """OverQuota when resizing one server from `old` to `new` (vcpus, memory_mb) passes the
    cores or ram quota: nova's upsize check, on the growth only."""
    deltas = {"cores": new[0] - old[0], "ram": new[1] - old[1]}
    check_deltas(limits, used, deltas)


def _raise(
    overs: list[str], requested: Mapping[str, str], limits: Limits, used: Mapping[str, int]
) -> None:
    raise OverQuota(_message(overs, requested, limits, used))


def instances_allowed(
    limits: Limits,
    used: Mapping[str, int],
    vcpus: int,
    memory_mb: int,
    min_count: int,
    max_count: int,
) -> int:
    """How many of max_count servers to build (nova builds fewer, but at least min_count, when
    not all fit); OverQuota when not even min_count fit."""
    per = {"instances": 1, "cores": vcpus, "ram": memory_mb}
    allowed = float(max_count)
    for resource in RESOURCES:
        if per[resource]:
            allowed = min(allowed, _headroom(limits, used, resource) // per[resource])
    if allowed >= min_count:
        return int(allowed)
    overs = [r for r in RESOURCES if max_count * per[r] > _headroom(limits, used, r)]
    count = str(min_count) if min_count == max_count else f"{min_count}-{max_count}"
    requested = {
        "instances": count,
        "cores": str(max_count * vcpus),
        "ram": str(max_count * memory_mb),
    }
    _raise(overs, requested, limits, used)
    raise AssertionError("unreachable")
