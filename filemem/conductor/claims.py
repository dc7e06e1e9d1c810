"""Claims that undo themselves: one mechanism for "claim here, hand over, roll back on failure".

A boot claims on the chosen host and hands the instance over; a move (live migration, resize)
will hold the source under a migration consumer while it claims the destination. Either way, a
step that fails, or finds the instance gone meanwhile, must leave no allocation behind.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from filemem.placement.claims import release
from filemem.placement.client import PlacementClient

__all__ = ["HeldClaim", "held_claim", "release"]


@dataclass
class HeldClaim:
    """An allocation of `consumer` that is released on exit unless the hand-over `commit`s it."""

    placement: PlacementClient
    consumer: str
    committed: bool = False

    def commit(self) -> None:
        """The instance now lives where the claim is: the claim belongs to it from here on."""
        self.committed = True


@contextmanager
def held_claim(placement: PlacementClient, consumer: str) -> Iterator[HeldClaim]:
    """Yield the claim; on an exception, or a normal exit without commit, delete it.

    A release that fails is logged, never raised over the original error: the agents' heal
    removes allocations of consumers no host runs, so the system still converges.
    """
    claim = HeldClaim(placement, consumer)
    try:
        yield claim
    finally:
        if not claim.committed:
            release(placement, consumer)
