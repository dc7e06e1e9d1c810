"""held_claim against real embedded Placement: a claim survives only a committed hand-over."""

from __future__ import annotations

import uuid as uuidlib

import pytest

from filemem.common.resources import MEMORY_MB
from filemem.conductor.claims import held_claim
from filemem.placement.client import PlacementClient, PlacementUnavailable
from filemem.placement.embedded import EmbeddedPlacement


@pytest.fixture
def placement(embedded_placement: EmbeddedPlacement) -> tuple[PlacementClient, str]:
    client = embedded_placement.client()
    provider = str(uuidlib.uuid4())
    client.ensure_resource_provider(provider, f"host-{provider[:8]}")
    client.set_inventories(provider, {MEMORY_MB: {"total": 1024}})
    return client, provider


def claimed(client: PlacementClient, provider: str) -> str:
    consumer = str(uuidlib.uuid4())
    assert client.claim(consumer, provider, {MEMORY_MB: 256}, "p", "u")
    return consumer


def test_a_committed_claim_stays(placement: tuple[PlacementClient, str]) -> None:
    client, provider = placement
    consumer = claimed(client, provider)
    with held_claim(client, consumer) as claim:
        claim.commit()
    assert consumer in client.get_provider_allocations(provider)


def test_a_hand_over_that_did_not_happen_releases_the_claim(
    placement: tuple[PlacementClient, str],
) -> None:
    client, provider = placement
    consumer = claimed(client, provider)
    with held_claim(client, consumer):
        pass  # e.g. the instance was deleted while it was scheduled
    assert consumer not in client.get_provider_allocations(provider)


def test_a_failing_hand_over_releases_the_claim_and_keeps_the_error(
    placement: tuple[PlacementClient, str],
) -> None:
    client, provider = placement
    consumer = claimed(client, provider)
    with pytest.raises(RuntimeError, match="database down"), held_claim(client, consumer):
        raise RuntimeError("database down")
    assert consumer not in client.get_provider_allocations(provider)


def test_one_release_for_the_scheduler_the_conductor_and_the_sweep(
    placement: tuple[PlacementClient, str],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failed release is logged, never raised: heal drops a consumer no host runs."""
    from filemem.conductor import build_cleanup
    from filemem.conductor import claims as conductor_claims
    from filemem.placement import claims
    from filemem.scheduler import manager as scheduler_manager

    assert conductor_claims.release is claims.release
    assert vars(build_cleanup)["release"] is claims.release
    assert vars(scheduler_manager)["release"] is claims.release
    client, provider = placement
    consumer = claimed(client, provider)
    claims.release(client, consumer)
    assert consumer not in client.get_provider_allocations(provider)

    def down(consumer: str) -> bool:
        raise PlacementUnavailable("http://placement", "connection refused")

    monkeypatch.setattr(client, "delete_allocations", down)
    claims.release(client, consumer)
    assert f"could not release the allocation of {consumer}" in caplog.text
