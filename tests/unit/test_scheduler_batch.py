"""Batched claims for multi-create: one POST /allocations for all guests, all or nothing, with
the host-state cache kept equal to Placement; against the embedded Placement."""

from __future__ import annotations

import uuid as uuidlib
from typing import Any

import pytest

from filemem.placement.client import PlacementClient
from filemem.placement.embedded import EmbeddedPlacement
from filemem.scheduler import HostRecord, NoValidHost, RequestSpec, Scheduler, SchedulerSettings
from tests.unit import servers_app
from tests.unit.servers_app import ServersApp

app = servers_app.app
MB = "MEMORY_MB"


def hosts(client: PlacementClient, *memory: int) -> list[HostRecord]:
    records = []
    for total in memory:
        uuid = str(uuidlib.uuid4())
        client.ensure_resource_provider(uuid, f"batch-{uuid[:8]}")
        client.set_inventories(uuid, {MB: {"total": total}, "VCPU": {"total": 64}})
        records.append(HostRecord(f"batch-{uuid[:8]}", uuid))
    return records


def specs(n: int, memory_mb: int = 1024) -> list[RequestSpec]:
    return [RequestSpec(str(uuidlib.uuid4()), "p", "u", memory_mb, 1) for _ in range(n)]


def scheduler(client: PlacementClient, records: list[HostRecord], **settings: Any) -> Scheduler:
    return Scheduler(client, lambda: records, SchedulerSettings(**settings))


def placement_usage(client: PlacementClient, records: list[HostRecord]) -> dict[str, int]:
    return {r.provider_uuid: client.get_usages(r.provider_uuid).get(MB, 0) for r in records}


def cached_usage(chosen: Scheduler, records: list[HostRecord]) -> dict[str, int]:
    mine = {r.provider_uuid for r in records}
    return chosen.cache.inspect(
        lambda states: {
            s.provider_uuid: s.usage.get(MB, 0) for s in states if s.provider_uuid in mine
        }
    )


def held(client: PlacementClient, batch: list[RequestSpec]) -> list[dict[str, Any]]:
    return [client.get_allocations(spec.instance_uuid)[1] for spec in batch]


def test_a_burst_is_one_post_and_fills_every_host_exactly(
    embedded_placement: EmbeddedPlacement,
) -> None:
    client = embedded_placement.client()
    records = hosts(client, 4096, 4096, 2048)
    chosen = scheduler(client, records)
    chosen.cache.ensure_loaded()
    before = dict(client.method_counts)
    batch = specs(10)
    selections = chosen.select_and_claim_many(batch)
    assert client.method_counts["POST"] - before.get("POST", 0) == 1
    assert client.method_counts["PUT"] == before.get("PUT", 0)
    assert placement_usage(client, records) == {
        records[0].provider_uuid: 4096,
        records[1].provider_uuid: 4096,
        records[2].provider_uuid: 2048,
    }
    assert cached_usage(chosen, records) == placement_usage(client, records)
    for spec, selection, allocations in zip(batch, selections, held(client, batch), strict=True):
        assert allocations == {selection.provider_uuid: {MB: 1024, "VCPU": 1}}, spec
    chosen.close()


@pytest.mark.parametrize("batch_claims", [True, False])
def test_a_burst_that_does_not_fit_claims_nothing(
    embedded_placement: EmbeddedPlacement, batch_claims: bool
) -> None:
    client = embedded_placement.client()
    records = hosts(client, 4096, 2048)
    chosen = scheduler(client, records, batch_claims=batch_claims)
    batch = specs(7)
    with pytest.raises(NoValidHost) as info:
        chosen.select_and_claim_many(batch)
    if batch_claims:
        assert info.value.reason.startswith("7 guests of MEMORY_MB:1024, VCPU:1 do not fit")
    assert held(client, batch) == [{}] * 7
    assert placement_usage(client, records) == dict.fromkeys(placement_usage(client, records), 0)
    assert cached_usage(chosen, records) == placement_usage(client, records)
    assert len(chosen.select_and_claim_many(specs(6))) == 6  # the room is all still there
    chosen.close()


def test_a_stale_cache_costs_a_refused_post_never_an_over_commit(
    embedded_placement: EmbeddedPlacement,
) -> None:
    client = embedded_placement.client()
    records = hosts(client, 4096, 4096)
    chosen = scheduler(client, records)
    chosen.cache.ensure_loaded()
    # Another API process fills the first host behind this cache's back.
    other = specs(1, 3072)[0]
    client.put_allocations(
        other.instance_uuid, {records[0].provider_uuid: {MB: 3072}}, "p", "u", None
    )
    before = client.method_counts["POST"]
    batch = specs(5)  # fits only if the first host takes exactly one
    selections = chosen.select_and_claim_many(batch)
    assert client.method_counts["POST"] - before == 2  # refused once, then claimed
    usage = placement_usage(client, records)
    assert usage == {records[0].provider_uuid: 4096, records[1].provider_uuid: 4096}
    assert [s.provider_uuid for s in selections].count(records[1].provider_uuid) == 4
    assert cached_usage(chosen, records) == usage
    chosen.close()


def test_an_existing_consumer_falls_back_to_one_claim_each(
    embedded_placement: EmbeddedPlacement,
) -> None:
    """A retried request: one guest holds its claim already; the batch POST cannot create it."""
    client = embedded_placement.client()
    records = hosts(client, 8192)
    chosen = scheduler(client, records)
    batch = specs(3)
    first = batch[0].instance_uuid
    client.put_allocations(first, {records[0].provider_uuid: {MB: 1024, "VCPU": 1}}, "p", "u", None)
    selections = chosen.select_and_claim_many(batch)
    assert {s.provider_uuid for s in selections} == {records[0].provider_uuid}
    assert placement_usage(client, records) == {records[0].provider_uuid: 3072}
    chosen.close()


def test_the_placement_strategy_claims_one_by_one_and_undoes(
    embedded_placement: EmbeddedPlacement,
) -> None:
    client = embedded_placement.client()
    records = hosts(client, 2048)
    chosen = scheduler(client, records, strategy="placement")
    assert len(chosen.select_and_claim_many(specs(2))) == 2
    batch = specs(2)
    with pytest.raises(NoValidHost):
        chosen.select_and_claim_many(batch)
    assert placement_usage(client, records) == {records[0].provider_uuid: 2048}
    assert held(client, batch) == [{}, {}]
    chosen.close()


def test_multi_create_claims_with_one_post(app: ServersApp) -> None:
    posts, puts = app.placement.method_counts["POST"], app.placement.method_counts["PUT"]
    body = {"name": "b", "flavorRef": app.flavor, "imageRef": app.image, "min_count": 3}
    response = app.call("POST", "/servers", json={"server": body})
    assert response.status_code == 202, response.text
    assert app.placement.method_counts["POST"] - posts == 1
    assert app.placement.method_counts["PUT"] == puts
    assert app.usage() == 3 * 256
