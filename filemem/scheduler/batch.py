"""Claims for several guests in one POST /allocations: all are written, or none (multi-create).

nova builds every server of a multi-create request or none; filemem used to claim them one PUT
at a time and undo the claims made when one did not fit. Placement's multi-consumer
POST /allocations (microversion 1.13+) checks and writes them in one transaction, summing what
the request asks of each provider, so a burst costs one round trip and cannot half-succeed.
bench/burst.py measures both side by side.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

from filemem.placement.client import (
    ConsumerGenerationConflict,
    InsufficientCapacity,
    PlacementApiError,
    PlacementClient,
)
from filemem.scheduler.host_state import HostState
from filemem.scheduler.request import PlacementRequest, RequestSpec

LOG = logging.getLogger(__name__)


def one_owner(specs: Sequence[RequestSpec]) -> bool:
    """Whether every guest has the same project and user (one body field for all of them)."""
    return len({(spec.project_id, spec.user_id) for spec in specs}) <= 1


def named_providers(detail: str, hosts: Collection[HostState]) -> frozenset[str]:
    """The chosen providers Placement's refusal names (it names the first that did not fit)."""
    return frozenset(host.provider_uuid for host in hosts if host.provider_uuid in detail)


def claim_all(
    client: PlacementClient,
    specs: Sequence[RequestSpec],
    requests: Sequence[PlacementRequest],
    hosts: Sequence[HostState],
) -> frozenset[str] | None:
    """Claim spec i's request on hosts[i] for every i, at once.

    None once all are claimed. When Placement refuses (no room, or a provider gone), nothing
    was claimed and the result is the providers it named, possibly none. Raises
    ConsumerGenerationConflict when a consumer already holds allocations (a retried request)
    or a provider changed meanwhile: the caller then claims one by one. Other Placement
    errors propagate (nothing was claimed either).
    """
    consumers = {
        spec.instance_uuid: {host.provider_uuid: dict(request.resources)}
        for spec, request, host in zip(specs, requests, hosts, strict=True)
    }
    if len(consumers) != len(specs):
        raise ValueError("each guest of a batch needs its own instance uuid")
    first = specs[0]
    try:
        client.move_allocations(
            consumers,
            dict.fromkeys(consumers),  # new consumers: generation None
            first.project_id,
            first.user_id,
        )
    except ConsumerGenerationConflict:
        raise
    except InsufficientCapacity as exc:
        LOG.info("batch claim of %d guests refused: %s", len(specs), exc.detail)
        return named_providers(exc.detail, hosts)
    except PlacementApiError as exc:
        named = named_providers(exc.detail, hosts)
        if exc.status == 400 and named:
            LOG.info("batch claim of %d guests names gone providers: %s", len(specs), exc.detail)
            return named
        raise
    return None
