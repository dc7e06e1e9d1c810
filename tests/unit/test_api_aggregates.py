"""os-aggregates and os-availability-zone in-process: nova's shapes and codes, the Placement
mirror, and the seed's ram_allocation_ratio rule at add_host, set_metadata and registration."""

from __future__ import annotations

import uuid as uuidlib
from pathlib import Path
from typing import Any

import httpx
import pytest

from filemem import conf as filemem_conf
from filemem.compute.agent_api import AgentApiClient
from filemem.compute.host import ComputeHost
from filemem.compute.reconcile.loop import ReconcileLoop
from filemem.placement.aggregates import get_provider_aggregates
from filemem.virt.fake import FakeDriver
from tests.unit.api_app import TOKEN, Api

FIELDS = {
    "availability_zone", "created_at", "deleted", "deleted_at", "hosts", "id", "metadata",
    "name", "updated_at",
}  # fmt: skip


def name() -> str:
    return f"agg-{uuidlib.uuid4().hex[:8]}"


def create(api: Api, zone: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name()}
    if zone is not None:
        body["availability_zone"] = zone
    aggregate: dict[str, Any] = api.compute("POST", "/os-aggregates", json={"aggregate": body})[
        "aggregate"
    ]
    return aggregate


def action(api: Api, agg_id: int | str, **body: Any) -> httpx.Response:
    return api.call("POST", f"/v2.1/os-aggregates/{agg_id}/action", json=body)


def register(api: Api, host: str, provider: str, file_backed: bool) -> httpx.Response:
    body = {
        "binary": "filemem-compute",
        "provider_uuid": provider,
        "file_backed": file_backed,
        "file_backed_memory_mb": 4096 if file_backed else 0,
    }
    return api.call("PUT", f"/filemem/v1/services/{host}", json=body)


def ram_host(api: Api, host: str) -> str:
    """A host without file-backed memory (api.register_host registers file-backed ones)."""
    provider = api.register_host(host)
    assert register(api, host, provider, file_backed=False).status_code == 200
    return provider


def message(response: httpx.Response) -> str:
    text: str = next(iter(response.json().values()))["message"]
    return text


def memory_ratio(api: Api, provider: str) -> float:
    return float(api.placement.get_inventories(provider)[1]["MEMORY_MB"]["allocation_ratio"])


def test_create_show_list_update_delete_in_novas_shapes(api: Api) -> None:
    created = create(api, zone="az1")
    assert set(created) == FIELDS - {"hosts", "metadata"}
    assert created["availability_zone"] == "az1" and created["deleted"] is False
    shown = api.compute("GET", f"/os-aggregates/{created['id']}")["aggregate"]
    assert set(shown) == FIELDS
    assert shown["hosts"] == [] and shown["metadata"] == {"availability_zone": "az1"}
    listed = api.compute("GET", "/os-aggregates")["aggregates"]
    assert [a["id"] for a in listed] == [created["id"]]
    renamed = api.compute(
        "PUT", f"/os-aggregates/{created['id']}", json={"aggregate": {"name": "renamed"}}
    )["aggregate"]
    assert renamed["name"] == "renamed" and renamed["updated_at"] is not None
    deleted = api.call("DELETE", f"/v2.1/os-aggregates/{created['id']}")
    assert deleted.status_code == 200 and deleted.content == b""
    assert api.call("GET", f"/v2.1/os-aggregates/{created['id']}").status_code == 404


def test_refusals_of_bad_input(api: Api) -> None:
    first = create(api)
    duplicate = api.call("POST", "/v2.1/os-aggregates", json={"aggregate": {"name": first["name"]}})
    assert duplicate.status_code == 409
    assert message(duplicate) == f"Aggregate {first['name']} already exists."
    for body, field in (
        ({"aggregate": {"name": ""}}, "aggregate.name"),
        ({"aggregate": {"name": " x"}}, "aggregate.name"),
        ({"aggregate": {"name": "x", "availability_zone": "a:b"}}, "availability_zone"),
        ({"aggregate": {"name": "x", "foo": 1}}, "aggregate.foo"),
    ):
        response = api.call("POST", "/v2.1/os-aggregates", json=body)
        assert response.status_code == 400 and field in message(response), response.text
    assert api.call("GET", "/v2.1/os-aggregates/abc").status_code == 400
    missing = api.call("GET", "/v2.1/os-aggregates/99999")
    assert missing.status_code == 404 and message(missing) == "Aggregate 99999 could not be found."
    bad_action = action(api, first["id"], add_host={"host": "x"}, remove_host={"host": "x"})
    assert bad_action.status_code == 400 and "exactly one" in message(bad_action)
    bad_key = action(api, first["id"], set_metadata={"metadata": {"bad/key": "1"}})
    assert bad_key.status_code == 400 and "metadata" in message(bad_key)


def test_hosts_join_and_leave_in_the_db_and_in_placement(api: Api) -> None:
    provider = api.register_host("agg-h1")
    aggregate = create(api)
    uuid = _uuid(api, aggregate["id"])
    unknown = action(api, aggregate["id"], add_host={"host": "nowhere"})
    assert unknown.status_code == 404
    assert message(unknown) == "Compute host nowhere could not be found."
    added = action(api, aggregate["id"], add_host={"host": "agg-h1"})
    assert added.status_code == 200 and added.json()["aggregate"]["hosts"] == ["agg-h1"]
    assert uuid in get_provider_aggregates(api.placement, provider)[1]
    twice = action(api, aggregate["id"], add_host={"host": "agg-h1"})
    assert twice.status_code == 409
    assert message(twice) == f"Aggregate {aggregate['id']} already has host agg-h1."
    not_empty = api.call("DELETE", f"/v2.1/os-aggregates/{aggregate['id']}")
    assert not_empty.status_code == 400 and "Host aggregate is not empty" in message(not_empty)
    removed = action(api, aggregate["id"], remove_host={"host": "agg-h1"})
    assert removed.status_code == 200 and removed.json()["aggregate"]["hosts"] == []
    assert uuid not in get_provider_aggregates(api.placement, provider)[1]
    again = action(api, aggregate["id"], remove_host={"host": "agg-h1"})
    assert again.status_code == 404
    assert message(again) == f"Cannot remove host agg-h1 in aggregate {aggregate['id']}"


def _uuid(api: Api, agg_id: int) -> str:
    from filemem.db import aggregates as db_aggregates

    with api.ctx.database.reader() as session:
        row = db_aggregates.get(session, agg_id)
        assert row is not None
        return row.uuid


def test_registration_repairs_placement_keeping_foreign_aggregates(api: Api) -> None:
    provider = api.register_host("agg-h2")
    aggregate = create(api)
    assert action(api, aggregate["id"], add_host={"host": "agg-h2"}).status_code == 200
    ours, foreign = _uuid(api, aggregate["id"]), str(uuidlib.uuid4())
    generation, _ = get_provider_aggregates(api.placement, provider)
    body = {"aggregates": [foreign], "resource_provider_generation": generation}
    api.placement.request("PUT", f"/resource_providers/{provider}/aggregates", body)
    assert register(api, "agg-h2", provider, file_backed=True).status_code == 200
    assert get_provider_aggregates(api.placement, provider)[1] == {ours, foreign}


def test_file_backed_host_never_joins_an_over_committing_aggregate(api: Api) -> None:
    api.register_host("agg-fb")
    aggregate = create(api)
    set_ratio = action(
        api, aggregate["id"], set_metadata={"metadata": {"ram_allocation_ratio": "1.5"}}
    )
    assert set_ratio.status_code == 200
    refused = action(api, aggregate["id"], add_host={"host": "agg-fb"})
    assert refused.status_code == 409
    assert "agg-fb has file-backed memory" in message(refused)
    assert "ram_allocation_ratio" in message(refused) and aggregate["name"] in message(refused)
    ok = action(api, aggregate["id"], set_metadata={"metadata": {"ram_allocation_ratio": "1.0"}})
    assert ok.status_code == 200
    assert action(api, aggregate["id"], add_host={"host": "agg-fb"}).status_code == 200
    for value in ("2.0", "many"):
        refused = action(
            api, aggregate["id"], set_metadata={"metadata": {"ram_allocation_ratio": value}}
        )
        assert refused.status_code == 409, refused.text
        assert "file-backed host(s) agg-fb" in message(refused)
    shown = api.compute("GET", f"/os-aggregates/{aggregate['id']}")["aggregate"]
    assert shown["metadata"] == {"ram_allocation_ratio": "1.0"}
    # A null value deletes the key: always allowed.
    clear = {"metadata": {"ram_allocation_ratio": None}}
    cleared = action(api, aggregate["id"], set_metadata=clear)
    assert cleared.status_code == 200 and cleared.json()["aggregate"]["metadata"] == {}


def test_a_host_turning_file_backed_in_an_over_committing_aggregate_is_refused(api: Api) -> None:
    provider = ram_host(api, "agg-turn")
    aggregate = create(api)
    meta = {"metadata": {"ram_allocation_ratio": "1.5"}}
    assert action(api, aggregate["id"], set_metadata=meta).status_code == 200
    assert action(api, aggregate["id"], add_host={"host": "agg-turn"}).status_code == 200
    refused = register(api, "agg-turn", provider, file_backed=True)
    assert refused.status_code == 409
    assert f"aggregate {aggregate['name']} (id {aggregate['id']})" in message(refused)
    services = api.compute("GET", "/os-hypervisors/detail")["hypervisors"]
    assert services  # the host stays registered as it was, not file-backed
    from filemem.db import api as db_api

    with api.ctx.database.reader() as session:
        service = db_api.get_service_by_host(session, "agg-turn")
        assert service is not None and service.file_backed is False


def _agent(tmp_path: Path, api: Api, host: str) -> tuple[ComputeHost, ReconcileLoop]:
    """A RAM-backed host's agent (fake hypervisor) talking to the in-process API."""
    state = tmp_path / host
    config = tmp_path / f"{host}.conf"
    config.write_text(
        f"[DEFAULT]\nhost = {host}\nstate_path = {state}\nram_allocation_ratio = 1.0\n"
        "[libvirt]\nvirt_type = qemu\nfile_backed_memory = 0\n"
    )
    conf = filemem_conf.load(config_files=[str(config)])
    driver = FakeDriver(state_path=state, backing_dir=tmp_path / "ram", file_backed_memory_mb=0)
    compute = ComputeHost.from_conf(conf, driver=driver, client=api.placement)
    agent_api = AgentApiClient("http://testserver", TOKEN)
    agent_api._clients = [api.client]  # the in-process app instead of a socket
    agent_api._http = api.client
    return compute, ReconcileLoop(compute, agent_api, wait=0)


def test_the_ratio_reaches_placement_through_the_agents_sync_only(
    api: Api, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compute, loop = _agent(tmp_path, api, "agg-ram")
    compute.tracker.sync()
    provider = compute.tracker.provider_uuid
    loop.heartbeat()
    aggregate = create(api)
    assert action(api, aggregate["id"], add_host={"host": "agg-ram"}).status_code == 200
    inventory_writes: list[str] = []
    request = api.placement.request

    def recording(method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        if method != "GET" and "/inventories" in path:
            inventory_writes.append(f"{method} {path}")
        return request(method, path, *args, **kwargs)

    monkeypatch.setattr(api.placement, "request", recording)
    meta = {"metadata": {"ram_allocation_ratio": "1.5"}}
    assert action(api, aggregate["id"], set_metadata=meta).status_code == 200
    answer = register(api, "agg-ram", provider, file_backed=False)
    assert answer.json()["ram_allocation_ratio"] == 1.5
    # The API answers the ratio and mirrors membership; it writes no inventory itself.
    assert inventory_writes == []
    assert memory_ratio(api, provider) == 1.0
    loop.heartbeat()
    compute.tracker.sync()  # the agent's inventory sync is the one writer of the ratio
    assert len(inventory_writes) == 1 and memory_ratio(api, provider) == 1.5
    compute.tracker.sync()
    assert len(inventory_writes) == 1  # and it does not fight anyone: no rewrite
    assert action(api, aggregate["id"], remove_host={"host": "agg-ram"}).status_code == 200
    assert (
        register(api, "agg-ram", provider, file_backed=False).json()["ram_allocation_ratio"] is None
    )
    loop.heartbeat()
    compute.tracker.sync()
    assert memory_ratio(api, provider) == 1.0


def test_a_host_is_in_one_zone(api: Api) -> None:
    api.register_host("agg-z1")
    first, second = create(api, zone="az1"), create(api, zone="az2")
    assert action(api, first["id"], add_host={"host": "agg-z1"}).status_code == 200
    conflict = action(api, second["id"], add_host={"host": "agg-z1"})
    assert conflict.status_code == 409
    assert "One or more hosts already in availability zone(s) ['az1']" in message(conflict)
    plain = create(api)
    assert action(api, plain["id"], add_host={"host": "agg-z1"}).status_code == 200
    moved = action(api, plain["id"], set_metadata={"metadata": {"availability_zone": "az2"}})
    assert moved.status_code == 400 and "['az1']" in message(moved)
    emptied = api.call(
        "PUT", f"/v2.1/os-aggregates/{plain['id']}", json={"aggregate": {"availability_zone": None}}
    )
    assert emptied.status_code == 400 and "empty named availability zone" in message(emptied)


def test_availability_zones_come_from_the_aggregates(api: Api) -> None:
    api.register_host("agg-a")
    api.register_host("agg-b")
    zoned = create(api, zone="az1")
    create(api, zone="empty-zone")
    assert action(api, zoned["id"], add_host={"host": "agg-a"}).status_code == 200
    listed = api.compute("GET", "/os-availability-zone")["availabilityZoneInfo"]
    assert listed == [
        {"zoneName": "az1", "zoneState": {"available": True}, "hosts": None},
        {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None},
    ]
    detail = api.compute("GET", "/os-availability-zone/detail")["availabilityZoneInfo"]
    hosts = {zone["zoneName"]: sorted(zone["hosts"]) for zone in detail}
    assert hosts == {"az1": ["agg-a"], "nova": ["agg-b"]}
    assert set(detail[0]["hosts"]["agg-a"]["nova-compute"]) == {"available", "active", "updated_at"}
