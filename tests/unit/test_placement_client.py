"""PlacementClient retry, backoff and no-change logic against a scripted transport."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

from filemem.conf import default as default_opts
from filemem.conf import placement as placement_opts
from filemem.exceptions import ConfigError
from filemem.placement import client_from_conf
from filemem.placement.client import (
    CONCURRENT_UPDATE,
    ConsumerGenerationConflict,
    GenerationConflict,
    InsufficientCapacity,
    PlacementApiError,
    PlacementClient,
    PlacementConflict,
    ResourceProviderNameConflict,
    Response,
)
from filemem.placement.http import HttpTransport

RP = "5b0c8a6e-1b1e-4a34-9a43-3a4a4f0f6a01"
CONSUMER = "0d9a4a3c-7c9e-4b53-8d1f-2f8e6bb1c001"
MEM_INV = {"MEMORY_MB": {"total": 4096, "reserved": 512}}
MEM_INV_REPORTED = {
    "MEMORY_MB": {
        "total": 4096,
        "reserved": 512,
        "min_unit": 1,
        "max_unit": 2147483647,
        "step_size": 1,
        "allocation_ratio": 1.0,
    }
}


def ok(body: dict[str, Any] | None = None, status: int = 200) -> Response:
    return Response(status, body)


def error(status: int, detail: str, code: str = "placement.undefined_code") -> Response:
    return Response(
        status, {"errors": [{"status": status, "title": "x", "detail": detail, "code": code}]}
    )


def race() -> Response:
    return error(409, "resource provider generation conflict", CONCURRENT_UPDATE)


@dataclass
class Call:
    method: str
    path: str
    body: dict[str, Any] | None
    headers: dict[str, str]


@dataclass
class ScriptedTransport:
    """Answers each request with the next scripted response, checking method and path."""

    script: list[tuple[str, str, Response]]
    calls: list[Call] = field(default_factory=list)
    endpoint: str = "scripted"

    def request(
        self, method: str, path: str, json_body: dict[str, Any] | None, headers: Mapping[str, str]
    ) -> Response:
        assert self.script, f"unexpected {method} {path}"
        want_method, want_path, resp = self.script.pop(0)
        assert (method, path) == (want_method, want_path)
        self.calls.append(Call(method, path, json_body, dict(headers)))
        return resp


def make(
    script: list[tuple[str, str, Response]], **kwargs: Any
) -> tuple[PlacementClient, ScriptedTransport, list[float]]:
    transport = ScriptedTransport(script)
    sleeps: list[float] = []
    client = PlacementClient(transport, sleep=sleeps.append, jitter=lambda: 0.0, **kwargs)
    return client, transport, sleeps


def inv_body(generation: int, inventories: dict[str, Any]) -> Response:
    return ok({"resource_provider_generation": generation, "inventories": inventories})


INV = f"/resource_providers/{RP}/inventories"
TRAITS = f"/resource_providers/{RP}/traits"
ALLOC = f"/allocations/{CONSUMER}"


def test_no_change_inventory_sync_makes_no_write() -> None:
    client, transport, _ = make([("GET", INV, inv_body(3, MEM_INV_REPORTED))])
    assert client.set_inventories(RP, MEM_INV) is False
    assert client.request_count == 1
    assert client.write_count == 0
    assert not transport.script


def test_changed_inventory_is_put_with_generation_and_defaults() -> None:
    client, transport, _ = make([("GET", INV, inv_body(3, {})), ("PUT", INV, inv_body(4, {}))])
    assert client.set_inventories(RP, MEM_INV) is True
    put = transport.calls[1].body
    assert put is not None
    assert put["resource_provider_generation"] == 3
    assert put["inventories"] == MEM_INV_REPORTED
    assert client.method_counts == {"GET": 1, "PUT": 1}


def test_every_request_pins_the_microversion() -> None:
    client, transport, _ = make([("GET", INV, inv_body(0, {}))], microversion="1.38")
    client.get_inventories(RP)
    assert transport.calls[0].headers["OpenStack-API-Version"] == "placement 1.38"


def test_generation_race_rereads_and_retries_with_growing_backoff() -> None:
    client, transport, sleeps = make(
        [
            ("GET", INV, inv_body(3, {})),
            ("PUT", INV, race()),
            ("GET", INV, inv_body(5, {})),
            ("PUT", INV, race()),
            ("GET", INV, inv_body(6, {})),
            ("PUT", INV, inv_body(7, {})),
        ],
        backoff_base=0.1,
        backoff_max=10.0,
    )
    assert client.set_inventories(RP, MEM_INV) is True
    gens = [c.body["resource_provider_generation"] for c in transport.calls if c.body]
    assert gens == [3, 5, 6]
    assert sleeps == [pytest.approx(0.05), pytest.approx(0.1)]


def test_race_where_the_winner_wrote_what_we_wanted_stops_without_a_write() -> None:
    client, _, sleeps = make(
        [
            ("GET", INV, inv_body(3, {})),
            ("PUT", INV, race()),
            ("GET", INV, inv_body(4, MEM_INV_REPORTED)),
        ]
    )
    assert client.set_inventories(RP, MEM_INV) is False
    assert client.method_counts["PUT"] == 1
    assert len(sleeps) == 1


def test_retries_are_bounded() -> None:
    script: list[tuple[str, str, Response]] = []
    for gen in range(3):
        script += [("GET", INV, inv_body(gen, {})), ("PUT", INV, race())]
    client, transport, sleeps = make(script, max_retries=2)
    with pytest.raises(GenerationConflict) as info:
        client.set_inventories(RP, MEM_INV)
    assert "generation conflict" in str(info.value)
    assert client.method_counts["PUT"] == 3
    assert len(sleeps) == 2
    assert not transport.script


def test_backoff_is_capped_and_jittered() -> None:
    draws = iter([0.0, 1.0])
    client = PlacementClient(
        ScriptedTransport([]), backoff_base=1.0, backoff_max=4.0, jitter=lambda: next(draws)
    )
    assert client._backoff(10) == pytest.approx(2.0)
    assert client._backoff(10) == pytest.approx(4.0)


def test_other_conflicts_are_not_retried() -> None:
    client, _, sleeps = make(
        [
            ("GET", INV, inv_body(3, MEM_INV_REPORTED)),
            (
                "PUT",
                INV,
                error(409, "update conflict: inventory in use", "placement.inventory.inuse"),
            ),
        ]
    )
    with pytest.raises(PlacementConflict) as info:
        client.set_inventories(RP, {})
    assert not isinstance(info.value, GenerationConflict)
    assert "inventory in use" in str(info.value)
    assert sleeps == []


def test_traits_no_change_and_custom_trait_creation() -> None:
    traits = ok({"resource_provider_generation": 2, "traits": ["COMPUTE_MEM_BACKING_FILE"]})
    client, transport, _ = make(
        [
            ("GET", TRAITS, traits),
            ("GET", TRAITS, traits),
            ("PUT", "/traits/CUSTOM_FAST_STORE", ok(status=201)),
            ("PUT", TRAITS, ok({"resource_provider_generation": 3, "traits": []})),
        ]
    )
    assert client.set_traits(RP, ["COMPUTE_MEM_BACKING_FILE"]) is False
    assert client.write_count == 0
    assert client.set_traits(RP, ["COMPUTE_MEM_BACKING_FILE", "CUSTOM_FAST_STORE"]) is True
    assert transport.calls[-1].body == {
        "resource_provider_generation": 2,
        "traits": ["COMPUTE_MEM_BACKING_FILE", "CUSTOM_FAST_STORE"],
    }


def test_traits_race_creates_custom_trait_once() -> None:
    traits = ok({"resource_provider_generation": 2, "traits": []})
    client, _, _ = make(
        [
            ("GET", TRAITS, traits),
            ("PUT", "/traits/CUSTOM_X", ok(status=201)),
            ("PUT", TRAITS, race()),
            ("GET", TRAITS, traits),
            ("PUT", TRAITS, ok({})),
        ]
    )
    assert client.set_traits(RP, ["CUSTOM_X"]) is True


def alloc_body(generation: int | None, resources: dict[str, int] | None = None) -> Response:
    if generation is None:
        return ok({"allocations": {}})
    return ok(
        {
            "allocations": {RP: {"generation": 9, "resources": resources or {}}},
            "consumer_generation": generation,
            "project_id": "p",
            "user_id": "u",
        }
    )


def test_claim_sends_consumer_type_and_null_generation_for_a_new_consumer() -> None:
    client, transport, _ = make([("GET", ALLOC, alloc_body(None)), ("PUT", ALLOC, ok(status=204))])
    assert client.claim(CONSUMER, RP, {"MEMORY_MB": 512}, "p", "u") is True
    assert transport.calls[1].body == {
        "allocations": {RP: {"resources": {"MEMORY_MB": 512}}},
        "project_id": "p",
        "user_id": "u",
        "consumer_generation": None,
        "consumer_type": "INSTANCE",
    }


def test_claim_retries_on_consumer_generation_conflict() -> None:
    client, transport, sleeps = make(
        [
            ("GET", ALLOC, alloc_body(None)),
            (
                "PUT",
                ALLOC,
                error(
                    409, "consumer generation conflict - expected null but got 1", CONCURRENT_UPDATE
                ),
            ),
            ("GET", ALLOC, alloc_body(1, {"MEMORY_MB": 256})),
            ("PUT", ALLOC, ok(status=204)),
        ]
    )
    assert client.claim(CONSUMER, RP, {"MEMORY_MB": 512}, "p", "u") is True
    assert transport.calls[3].body is not None
    assert transport.calls[3].body["consumer_generation"] == 1
    assert len(sleeps) == 1


def test_claim_already_held_makes_no_write() -> None:
    client, _, _ = make([("GET", ALLOC, alloc_body(1, {"MEMORY_MB": 512}))])
    assert client.claim(CONSUMER, RP, {"MEMORY_MB": 512}, "p", "u") is False
    assert client.write_count == 0


def test_claim_retries_are_bounded() -> None:
    conflict = error(409, "consumer generation conflict", CONCURRENT_UPDATE)
    client, _, _ = make(
        [("GET", ALLOC, alloc_body(None)), ("PUT", ALLOC, conflict)] * 2, max_retries=1
    )
    with pytest.raises(ConsumerGenerationConflict):
        client.claim(CONSUMER, RP, {"MEMORY_MB": 512}, "p", "u")


def test_claim_over_capacity_is_a_distinct_error_keeping_placements_words() -> None:
    detail = (
        "Unable to allocate inventory: Unable to create allocation for 'MEMORY_MB' on "
        "resource provider 'x'. The requested amount would exceed the capacity."
    )
    client, _, sleeps = make([("GET", ALLOC, alloc_body(None)), ("PUT", ALLOC, error(409, detail))])
    with pytest.raises(InsufficientCapacity) as info:
        client.claim(CONSUMER, RP, {"MEMORY_MB": 512}, "p", "u")
    assert "would exceed the capacity" in str(info.value)
    assert info.value.status == 409
    assert sleeps == []


def test_delete_allocations_treats_404_as_gone() -> None:
    client, _, _ = make(
        [("DELETE", ALLOC, ok(status=204)), ("DELETE", ALLOC, error(404, "not found"))]
    )
    assert client.delete_allocations(CONSUMER) is True
    assert client.delete_allocations(CONSUMER) is False


def test_server_errors_keep_status_and_detail() -> None:
    client, _, _ = make(
        [("GET", f"/resource_providers/{RP}/usages", error(500, "db went away\n\n  badly"))]
    )
    with pytest.raises(PlacementApiError) as info:
        client.get_usages(RP)
    assert info.value.status == 500
    assert "db went away badly" in str(info.value)


def test_ensure_provider_name_taken_by_another_uuid() -> None:
    other = {"uuid": "other-uuid", "name": "host1", "generation": 0}
    client, _, _ = make(
        [
            ("GET", f"/resource_providers/{RP}", error(404, "nope")),
            (
                "POST",
                "/resource_providers",
                error(409, "Conflicting resource provider name", "placement.duplicate_name"),
            ),
            ("GET", f"/resource_providers/{RP}", error(404, "nope")),
            ("GET", "/resource_providers?name=host1", ok({"resource_providers": [other]})),
        ]
    )
    with pytest.raises(ResourceProviderNameConflict) as info:
        client.ensure_resource_provider(RP, "host1")
    assert "other-uuid" in str(info.value)
    assert "'host1'" in str(info.value)


def test_allocation_candidates_query() -> None:
    path = (
        "/allocation_candidates?resources=MEMORY_MB:512,VCPU:1"
        "&required=CUSTOM_A,!COMPUTE_MEM_BACKING_FILE&limit=5"
    )
    body = {
        "allocation_requests": [{"allocations": {RP: {"resources": {"MEMORY_MB": 512}}}}],
        "provider_summaries": {RP: {"resources": {}}},
    }
    client, _, _ = make([("GET", path, ok(body))])
    cands = client.allocation_candidates(
        {"VCPU": 1, "MEMORY_MB": 512}, ["CUSTOM_A"], ["COMPUTE_MEM_BACKING_FILE"], limit=5
    )
    assert cands.allocation_requests == [{RP: {"MEMORY_MB": 512}}]
    assert set(cands.provider_summaries) == {RP}


def conf_with(tmp_path: Path, placement_section: str) -> cfg.ConfigOpts:
    path = tmp_path / "filemem.conf"
    path.write_text("[placement]\n" + placement_section)
    conf = cfg.ConfigOpts()
    conf.register_opts(default_opts.OPTS)
    conf.register_opts(placement_opts.OPTS, group=placement_opts.GROUP)
    conf([], default_config_files=[str(path)])
    return conf


def test_conf_endpoint_and_token_give_a_static_token_http_client(tmp_path: Path) -> None:
    conf = conf_with(
        tmp_path, "endpoint = http://127.0.0.1:8778\nmicroversion = 1.38\nmax_retries = 3\n"
    )
    client = client_from_conf(conf)
    assert isinstance(client.transport, HttpTransport)
    assert client.endpoint == "http://127.0.0.1:8778"
    assert (client.microversion, client.max_retries) == ("1.38", 3)


def test_conf_auth_section_is_followed_to_its_group(tmp_path: Path) -> None:
    conf = conf_with(
        tmp_path,
        "auth_section = keystone\n[keystone]\nauth_type = password\n"
        "auth_url = http://127.0.0.1:5000/v3\nusername = filemem\npassword = pw\n",
    )
    client = client_from_conf(conf)
    assert isinstance(client.transport, HttpTransport)
    assert "service catalog" in client.endpoint


def test_conf_plugin_clashing_with_placement_options_is_a_config_error(tmp_path: Path) -> None:
    conf = conf_with(tmp_path, "endpoint = http://127.0.0.1:8778\nauth_type = admin_token\n")
    with pytest.raises(ConfigError, match="auth_section"):
        client_from_conf(conf)
