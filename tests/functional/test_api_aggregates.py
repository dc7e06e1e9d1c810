"""Aggregates and availability zones against a real filemem-api and standalone Placement:
the `openstack` CLI, tempest's negative cases over HTTP, every refusal of the seed's rule, and
a boot kept in its zone (two registered hosts)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from filemem.placement.aggregates import get_provider_aggregates
from tests.functional.api_fixtures import (
    TOKEN,
    ApiEnv,
    agent_converge_deletes,
    api_env,
    make_flavor,
    make_image,
    register_host,
)
from tests.functional.placement_fixtures import REPO

OPENSTACK = REPO / ".venv" / "bin" / "openstack"
FILE_HOST, RAM_HOST = "agg-fb", "agg-ram"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("api-aggregates")) as running:
        yield running


@pytest.fixture(scope="module")
def providers(env: ApiEnv) -> dict[str, str]:
    return {
        FILE_HOST: register_host(env, FILE_HOST, memory_mb=2048),
        RAM_HOST: register_host(env, RAM_HOST, memory_mb=2048, file_backed=False),
    }


def run_cli(env: ApiEnv, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  filemem:\n    auth_type: admin_token\n    auth:\n"
        f"      endpoint: {env.url}/v2.1\n      token: {TOKEN}\n"
        f"    identity_endpoint_override: {env.url}/identity/v3\n"
        f"    image_endpoint_override: {env.url}/image\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    environ.update(OS_CLIENT_CONFIG_FILE=str(clouds), OS_CLOUD="filemem")
    return subprocess.run(
        [str(OPENSTACK), *args], env=environ, capture_output=True, text=True, timeout=120
    )


def cli_json(env: ApiEnv, tmp_path: Path, *args: str) -> Any:
    result = run_cli(env, tmp_path, *args, "-f", "json")
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return json.loads(result.stdout)


def cli_ok(env: ApiEnv, tmp_path: Path, *args: str) -> None:
    result = run_cli(env, tmp_path, *args)
    assert result.returncode == 0, (args, result.stdout, result.stderr)


def memory_ratio(env: ApiEnv, provider: str) -> float:
    return float(env.placement.get_inventories(provider)[1]["MEMORY_MB"]["allocation_ratio"])


def agent_sync(env: ApiEnv, host: str, provider: str) -> None:
    """What the RAM host's agent does: register, then write the answered MEMORY_MB ratio in
    its inventory sync (the one writer of the ratio in Placement)."""
    body = {"binary": "filemem-compute", "provider_uuid": provider, "file_backed": False}
    response = env.http.put(
        f"/filemem/v1/services/{host}", json={**body, "file_backed_memory_mb": 0}
    )
    assert response.status_code == 200, response.text
    ratio = response.json()["ram_allocation_ratio"]
    _generation, inventories = env.placement.get_inventories(provider)
    memory = {**inventories["MEMORY_MB"], "allocation_ratio": 1.0 if ratio is None else ratio}
    env.placement.set_inventories(provider, {**inventories, "MEMORY_MB": memory})


def aggregate(env: ApiEnv, name: str, zone: str | None = None) -> int:
    body: dict[str, Any] = {"name": name}
    if zone:
        body["availability_zone"] = zone
    response = env.compute("POST", "/os-aggregates", json={"aggregate": body})
    assert response.status_code == 200, response.text
    agg_id: int = response.json()["aggregate"]["id"]
    return agg_id


def act(env: ApiEnv, agg_id: int, **body: Any) -> httpx.Response:
    return env.compute("POST", f"/os-aggregates/{agg_id}/action", json=body)


def message(response: httpx.Response) -> str:
    text: str = next(iter(response.json().values()))["message"]
    return text


def test_openstack_cli_aggregates_zones_and_a_zoned_boot(
    env: ApiEnv, providers: dict[str, str], tmp_path: Path
) -> None:
    created = cli_json(env, tmp_path, "aggregate", "create", "--zone", "az1", "cli-a1")
    assert created["availability_zone"] == "az1" and created["name"] == "cli-a1"
    added = cli_json(env, tmp_path, "aggregate", "add", "host", "cli-a1", RAM_HOST)
    assert added["hosts"] == [RAM_HOST]
    cli_ok(env, tmp_path, "aggregate", "set", "--property", "ram_allocation_ratio=1.5", "cli-a1")
    agent_sync(env, RAM_HOST, providers[RAM_HOST])
    assert memory_ratio(env, providers[RAM_HOST]) == 1.5
    shown = cli_json(env, tmp_path, "aggregate", "show", "cli-a1")
    assert shown["properties"] == {"ram_allocation_ratio": "1.5"}
    assert shown["availability_zone"] == "az1"
    listed = cli_json(env, tmp_path, "aggregate", "list", "--long")
    assert [a["Name"] for a in listed] == ["cli-a1"]

    cli_json(env, tmp_path, "aggregate", "create", "cli-fb")
    cli_json(env, tmp_path, "aggregate", "add", "host", "cli-fb", FILE_HOST)
    refused = run_cli(
        env, tmp_path, "aggregate", "set", "--property", "ram_allocation_ratio=1.5", "cli-fb"
    )
    assert refused.returncode != 0
    assert "409" in refused.stderr and "file-backed host(s) agg-fb" in refused.stderr

    zones = cli_json(env, tmp_path, "availability", "zone", "list", "--compute", "--long")
    hosts = {(z["Zone Name"], z["Host Name"]) for z in zones}
    assert hosts == {("az1", RAM_HOST), ("nova", FILE_HOST)}

    make_flavor(env, "agg.small", ram=256)
    image = make_image(env, "agg-image")
    for name in ("zoned-1", "zoned-2"):
        server = cli_json(
            env, tmp_path, "server", "create", "--availability-zone", "az1", "--no-network",
            "--flavor", "agg.small", "--image", image, name,
        )  # fmt: skip
        shown = cli_json(env, tmp_path, "server", "show", server["id"])
        assert shown["OS-EXT-SRV-ATTR:host"] == RAM_HOST
        assert shown["OS-EXT-AZ:availability_zone"] == "az1"
        cli_ok(env, tmp_path, "server", "delete", server["id"])
        assert server["id"] in agent_converge_deletes(env, RAM_HOST)

    cli_ok(env, tmp_path, "aggregate", "remove", "host", "cli-a1", RAM_HOST)
    cli_ok(env, tmp_path, "aggregate", "remove", "host", "cli-fb", FILE_HOST)
    assert get_provider_aggregates(env.placement, providers[RAM_HOST])[1] == set()
    cli_ok(env, tmp_path, "aggregate", "delete", "cli-a1", "cli-fb")
    assert cli_json(env, tmp_path, "aggregate", "list") == []


def test_tempest_negative_cases(env: ApiEnv, providers: dict[str, str]) -> None:
    agg_id = aggregate(env, "neg-1")
    duplicate = env.compute("POST", "/os-aggregates", json={"aggregate": {"name": "neg-1"}})
    assert duplicate.status_code == 409
    unknown = act(env, agg_id, add_host={"host": "no-such-host"})
    assert unknown.status_code == 404
    assert act(env, agg_id, add_host={"host": FILE_HOST}).status_code == 200
    assert act(env, agg_id, add_host={"host": FILE_HOST}).status_code == 409
    assert act(env, agg_id, remove_host={"host": RAM_HOST}).status_code == 404
    assert env.compute("DELETE", f"/os-aggregates/{agg_id}").status_code == 400
    assert env.compute("GET", "/os-aggregates/987654").status_code == 404
    assert (
        env.compute("PUT", "/os-aggregates/x", json={"aggregate": {"name": "y"}}).status_code == 400
    )
    assert act(env, agg_id, remove_host={"host": FILE_HOST}).status_code == 200
    assert env.compute("DELETE", f"/os-aggregates/{agg_id}").status_code == 200


def test_every_refusal_of_the_ratio_rule(env: ApiEnv, providers: dict[str, str]) -> None:
    over = aggregate(env, "rule-over")
    meta = {"metadata": {"ram_allocation_ratio": "1.5"}}
    assert act(env, over, set_metadata=meta).status_code == 200
    # (a) a file-backed host joining an over-committing aggregate
    joined = act(env, over, add_host={"host": FILE_HOST})
    assert joined.status_code == 409 and "rule-over" in message(joined)
    # (b) an over-committing ratio (or an unparsable one) on an aggregate with one
    plain = aggregate(env, "rule-plain")
    assert act(env, plain, add_host={"host": FILE_HOST}).status_code == 200
    for value in ("2.0", "lots"):
        bad = {"metadata": {"ram_allocation_ratio": value}}
        refused = act(env, plain, set_metadata=bad)
        assert refused.status_code == 409 and FILE_HOST in message(refused), refused.text
    assert act(env, plain, remove_host={"host": FILE_HOST}).status_code == 200
    # (c) a host turning file-backed at its agent's start while in one
    assert act(env, over, add_host={"host": RAM_HOST}).status_code == 200
    body = {
        "binary": "filemem-compute",
        "provider_uuid": providers[RAM_HOST],
        "file_backed": True,
        "file_backed_memory_mb": 2048,
    }
    turned = env.http.put(f"/filemem/v1/services/{RAM_HOST}", json=body)
    assert turned.status_code == 409 and "aggregate rule-over" in message(turned)
    assert act(env, over, remove_host={"host": RAM_HOST}).status_code == 200
    for agg_id in (over, plain):
        assert env.compute("DELETE", f"/os-aggregates/{agg_id}").status_code == 200
