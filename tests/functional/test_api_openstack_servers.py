"""The `openstack` CLI against filemem-api for server update, metadata, tags, key pairs,
instance actions and multi-create (a running API, real Placement, agents acting over HTTP)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.api_fixtures import (
    ApiEnv,
    agent_spawned,
    api_env,
    make_flavor,
    make_image,
    register_host,
    show_server,
)
from tests.functional.test_api_openstack import cli

HOST = "osc-servers-host"
# An ed25519 public key (the CLI reads it from a file).
PUBLIC_KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAABAgMEBQYHCAkKCwwNDg8QERITFBUWFxgZGhscHR4f "
    "someone@example"
)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("api-osc-servers")) as running:
        register_host(running, HOST, memory_mb=4096, vcpus=8)
        yield running


@pytest.fixture(scope="module")
def refs(env: ApiEnv) -> dict[str, str]:
    return {"flavor": make_flavor(env, "osc.small", ram=256), "image": make_image(env, "osc-img")}


def as_json(text: str) -> object:
    return json.loads(text)


def test_keypairs_with_the_cli(env: ApiEnv, refs: dict[str, str], tmp_path: Path) -> None:
    key_file = tmp_path / "id.pub"
    key_file.write_text(PUBLIC_KEY + "\n")
    created = as_json(
        cli(env, tmp_path, "keypair", "create", "--public-key", str(key_file), "k1", "-f", "json")
    )
    assert isinstance(created, dict) and created["name"] == "k1"
    assert len(created["fingerprint"].split(":")) == 16
    listed = cli(env, tmp_path, "keypair", "list", "-f", "value", "-c", "Name")
    assert listed.split() == ["k1"]
    shown = as_json(cli(env, tmp_path, "keypair", "show", "k1", "-f", "json"))
    assert isinstance(shown, dict) and shown["fingerprint"] == created["fingerprint"]
    server_id = cli(
        env, tmp_path, "server", "create", "--flavor", refs["flavor"], "--image", refs["image"],
        "--key-name", "k1", "--nic", "none", "keyed", "-f", "value", "-c", "id",
    ).strip()  # fmt: skip
    assert show_server(env, server_id)["key_name"] == "k1"
    cli(env, tmp_path, "keypair", "delete", "k1")
    assert cli(env, tmp_path, "keypair", "list", "-f", "value", "-c", "Name").strip() == ""


def test_server_set_unset_show_list_and_events(
    env: ApiEnv, refs: dict[str, str], tmp_path: Path
) -> None:
    server_id = cli(
        env, tmp_path, "server", "create", "--flavor", refs["flavor"], "--image", refs["image"],
        "--nic", "none", "before", "-f", "value", "-c", "id",
    ).strip()  # fmt: skip
    agent_spawned(env, server_id)
    cli(
        env, tmp_path, "--os-compute-api-version", "2.19", "server", "set", "--name", "after",
        "--description", "described", "--property", "role=web", "--property", "tier=1",
        server_id,
    )  # fmt: skip
    cli(env, tmp_path, "server", "unset", "--property", "tier", server_id)
    shown = as_json(
        cli(
            env, tmp_path, "--os-compute-api-version", "2.26", "server", "show", server_id,
            "-f", "json",
        )
    )  # fmt: skip
    assert isinstance(shown, dict)
    assert (shown["name"], shown["description"]) == ("after", "described")
    assert shown["properties"] in ({"role": "web"}, "role='web'")
    cli(env, tmp_path, "--os-compute-api-version", "2.26", "server", "set", "--tag", "blue",
        "--tag", "green", server_id)  # fmt: skip
    cli(env, tmp_path, "--os-compute-api-version", "2.26", "server", "unset", "--tag", "green",
        server_id)  # fmt: skip
    assert show_server_tags(env, server_id) == ["blue"]
    listing = as_json(cli(env, tmp_path, "server", "list", "--long", "-f", "json"))
    assert isinstance(listing, list)
    row = next(r for r in listing if r["ID"] == server_id)
    assert (row["Name"], row["Status"], row["Host"]) == ("after", "ACTIVE", HOST)
    events = as_json(cli(env, tmp_path, "server", "event", "list", server_id, "-f", "json"))
    assert isinstance(events, list) and [e["Action"] for e in events] == ["create"]
    request_id = events[0]["Request ID"]
    event = as_json(
        cli(env, tmp_path, "server", "event", "show", server_id, request_id, "-f", "json")
    )
    assert isinstance(event, dict) and event["action"] == "create"


def show_server_tags(env: ApiEnv, server_id: str) -> list[str]:
    response = env.compute(
        "GET", f"/servers/{server_id}/tags", headers={"OpenStack-API-Version": "compute 2.26"}
    )
    assert response.status_code == 200, response.text
    tags: list[str] = response.json()["tags"]
    return tags


def test_multi_create_and_networks_none_with_the_cli(
    env: ApiEnv, refs: dict[str, str], tmp_path: Path
) -> None:
    cli(
        env, tmp_path, "server", "create", "--flavor", refs["flavor"], "--image", refs["image"],
        "--nic", "none", "--min", "2", "--max", "2", "twin",
    )  # fmt: skip
    listing = as_json(
        cli(
            env, tmp_path, "--os-compute-api-version", "2.3", "server", "list", "--name",
            "^twin-", "--long", "-f", "json",
        )
    )  # fmt: skip
    assert isinstance(listing, list)
    assert sorted(r["Name"] for r in listing) == ["twin-1", "twin-2"]
    assert {r["Status"] for r in listing} == {"BUILD"}
    created = cli(
        env, tmp_path, "--os-compute-api-version", "2.37", "server", "create", "--flavor",
        refs["flavor"], "--image", refs["image"], "--nic", "none", "netless", "-f", "value",
        "-c", "id",
    ).strip()  # fmt: skip
    assert show_server(env, created)["name"] == "netless"
