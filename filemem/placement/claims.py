"""The one release of a claim that must not hide the error that made it go (best effort)."""

from __future__ import annotations

import logging

from filemem.exceptions import FilememError
from filemem.placement.client import PlacementClient

LOG = logging.getLogger(__name__)


def release(placement: PlacementClient, consumer: str) -> None:
    """Drop the consumer's allocations; a failure is logged, never raised over the error
    being handled: the agents' heal removes allocations of consumers no host runs."""
    try:
        placement.delete_allocations(consumer)
    except FilememError as exc:
        LOG.error("could not release the allocation of %s (heal will): %s", consumer, exc)
