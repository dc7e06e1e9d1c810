"""Pure selection: the best-weighed host that passes every filter, and why none did."""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Sequence

from filemem.scheduler.filters.base import BaseFilter, Rejection
from filemem.scheduler.host_state import HostState
from filemem.scheduler.request import PlacementRequest

REFUSED_BY_PLACEMENT = Rejection(
    "was refused by Placement (its usage changed since the last refresh)",
    "were refused by Placement (their usage changed since the last refresh)",
)
NOT_TRIED = Rejection(
    "could take it but was not tried (claim attempts exhausted)",
    "could take it but were not tried (claim attempts exhausted)",
)


def first_rejection(
    host: HostState, request: PlacementRequest, filters: Sequence[BaseFilter]
) -> Rejection | None:
    for host_filter in filters:
        rejection = host_filter.check(host, request)
        if rejection is not None:
            return rejection
    return None


def pick(
    order: Iterable[HostState],
    request: PlacementRequest,
    filters: Sequence[BaseFilter],
    exclude: Collection[str] = (),
    subset_size: int = 1,
    rng: random.Random | None = None,
) -> HostState | None:
    """The first host of `order` (best first) that passes, or a random one of the first few.

    Walking in weight order and stopping early is what keeps a pick cheap with thousands of
    hosts: the result equals filtering all of them and taking the best, without doing so.
    """
    chosen: list[HostState] = []
    for host in order:
        if host.provider_uuid in exclude:
            continue
        if first_rejection(host, request, filters) is None:
            chosen.append(host)
            if len(chosen) >= subset_size:
                break
    if len(chosen) <= 1:
        return chosen[0] if chosen else None
    return (rng or random.Random()).choice(chosen)  # noqa: S311 - spreading load, not secrets


def _count(n: int, rejection: Rejection, free: int | None) -> str:
    words = rejection.singular if n == 1 else rejection.plural
    if free is None:
        return f"{n} {words}"
    return f"{n} {words} (free {free})" if n == 1 else f"{n} {words} (free at most {free})"


def explain(
    hosts: Sequence[HostState],
    request: PlacementRequest,
    filters: Sequence[BaseFilter],
    refused: Collection[str] = (),
) -> str:
    """E.g. "2 hosts; 1 has COMPUTE_MEM_BACKING_FILE but ...; 1 lacks MEMORY_MB 4096 (free 1024)".

    Each host counts under the first filter refusing it; a host every filter accepts was
    refused by Placement (`refused`) or never tried. Largest groups come first.
    """
    if not hosts:
        return "no enabled compute hosts are registered"
    groups: dict[Rejection, tuple[int, int | None]] = {}
    for host in hosts:
        rejection = first_rejection(host, request, filters)
        if rejection is None:
            rejection = REFUSED_BY_PLACEMENT if host.provider_uuid in refused else NOT_TRIED
        key = Rejection(rejection.singular, rejection.plural)
        count, free = groups.get(key, (0, None))
        if rejection.free is not None:
            free = rejection.free if free is None else max(free, rejection.free)
        groups[key] = (count + 1, free)
    ranked = sorted(groups.items(), key=lambda item: (-item[1][0], item[0].singular))
    total = f"{len(hosts)} host" + ("" if len(hosts) == 1 else "s")
    return "; ".join([total, *(_count(n, key, free) for key, (n, free) in ranked)])
