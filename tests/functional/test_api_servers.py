"""Servers over real HTTP with real Placement and the real scheduler; agents act through HTTP."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.functional.api_fixtures import (
    ApiEnv,
    agent_converge_deletes,
    agent_report,
    agent_spawned,
    agent_watch,
    api_env,
    create_server,
    make_flavor,
    make_image,
    register_host,
    show_server,
)

HOST = "srv-host-1"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("api-servers")) as running:
        # These tests boot more than [quota] instances = 10 and ask for hosts that cannot
        # exist: Placement's answers, not the project's quota, are what they check.
        unlimited = {"quota_set": {"instances": -1, "cores": -1, "ram": -1}}
        lifted = running.compute("PUT", "/os-quota-sets/filemem", json=unlimited)
        assert lifted.status_code == 200, lifted.text
        yield running


@pytest.fixture(scope="module")
def setup(env: ApiEnv) -> dict[str, str]:
    provider = register_host(env, HOST, memory_mb=4096, vcpus=16)
    return {
        "provider": provider,
        "flavor": make_flavor(env, "srv.small", ram=256),
        "image": make_image(env, "srv-image"),
    }


def usage(env: ApiEnv, provider: str) -> int:
    return env.placement.get_usages(provider).get("MEMORY_MB", 0)


def test_create_schedules_claims_and_shows_nova_shapes(env: ApiEnv, setup: dict[str, str]) -> None:
    before = usage(env, setup["provider"])
    response = env.compute(
        "POST",
        "/servers",
        json={
            "server": {
                "name": "shape",
                "flavorRef": setup["flavor"],
                "imageRef": setup["image"],
                "metadata": {"role": "test"},
            }
        },
    )
    assert response.status_code == 202, response.text
    created = response.json()["server"]
    assert set(created) >= {"id", "links"}
    server = show_server(env, created["id"])
    assert server["status"] == "BUILD"
    assert server["OS-EXT-SRV-ATTR:host"] == HOST
    assert (
        server["OS-EXT-STS:vm_state"],
        server["OS-EXT-STS:task_state"],
        server["OS-EXT-STS:power_state"],
    ) == ("building", "spawning", 0)
    assert server["flavor"]["id"] == setup["flavor"]
    assert server["flavor"]["links"][0]["rel"] == "bookmark"
    assert server["image"]["id"] == setup["image"]
    assert server["metadata"] == {"role": "test"}
    # No networks before 2.37 is "auto": one address on the built-in network.
    (address,) = server["addresses"]["private"]
    assert address["OS-EXT-IPS:type"] == "fixed" and server["key_name"] is None
    assert len(server["hostId"]) == 56 and server["tenant_id"] and server["user_id"]
    assert server["created"].endswith("Z") and "fault" not in server
    assert usage(env, setup["provider"]) == before + 256
    allocations = env.placement.get_allocations(created["id"])[1]
    assert allocations == {setup["provider"]: {"MEMORY_MB": 256, "VCPU": 1}}

    agent_spawned(env, created["id"])
    server = show_server(env, created["id"])
    assert (server["status"], server["OS-EXT-STS:power_state"]) == ("ACTIVE", 1)
    assert server["OS-SRV-USG:launched_at"] is not None


def test_list_detail_and_filters(env: ApiEnv, setup: dict[str, str]) -> None:
    ids = [create_server(env, f"list-{i}", setup["flavor"], setup["image"]) for i in range(3)]
    listed = env.compute("GET", "/servers").json()["servers"]
    assert set(ids) <= {s["id"] for s in listed}
    assert set(listed[0]) == {"id", "name", "links"}
    detail = env.compute("GET", "/servers/detail", params={"name": "^list-"}).json()
    assert sorted(s["id"] for s in detail["servers"]) == sorted(ids)
    assert all(s["status"] == "BUILD" for s in detail["servers"])
    by_host = env.compute("GET", "/servers/detail", params={"host": HOST}).json()["servers"]
    assert set(ids) <= {s["id"] for s in by_host}
    assert env.compute("GET", "/servers", params={"host": "elsewhere"}).json()["servers"] == []
    by_status = env.compute("GET", "/servers", params={"status": "ACTIVE", "name": "^list-"})
    assert by_status.json()["servers"] == []
    by_flavor = env.compute("GET", "/servers", params={"flavor": setup["flavor"]}).json()
    assert set(ids) <= {s["id"] for s in by_flavor["servers"]}
    by_image = env.compute("GET", "/servers", params={"image": setup["image"]}).json()
    assert set(ids) <= {s["id"] for s in by_image["servers"]}


def test_limit_and_marker_page_through(env: ApiEnv, setup: dict[str, str]) -> None:
    for i in range(3):
        create_server(env, f"page-{i}", setup["flavor"], setup["image"])
    first = env.compute("GET", "/servers", params={"name": "^page-", "limit": 2}).json()
    assert len(first["servers"]) == 2
    assert first["servers_links"][0]["rel"] == "next"
    marker = first["servers"][-1]["id"]
    rest = env.compute("GET", "/servers", params={"name": "^page-", "marker": marker}).json()
    assert len(rest["servers"]) == 1
    bad = env.compute("GET", "/servers", params={"marker": "no-such-marker"})
    assert bad.status_code == 400 and "marker" in bad.json()["badRequest"]["message"]
    bad_regex = env.compute("GET", "/servers", params={"name": "("})
    assert bad_regex.status_code == 400


def test_actions_set_task_state_and_refuse_bad_states(env: ApiEnv, setup: dict[str, str]) -> None:
    server_id = create_server(env, "actions", setup["flavor"], setup["image"])

    def act(body: dict[str, Any]) -> Any:
        return env.compute("POST", f"/servers/{server_id}/action", json=body)

    assert act({"os-start": None}).status_code == 409  # still building
    agent_spawned(env, server_id)
    start = act({"os-start": None})
    assert start.status_code == 409
    assert "vm_state active" in start.json()["conflictingRequest"]["message"]

    assert act({"os-stop": None}).status_code == 202
    assert show_server(env, server_id)["OS-EXT-STS:task_state"] == "powering-off"
    busy = act({"reboot": {"type": "SOFT"}})
    assert busy.status_code == 409
    assert "task_state powering-off" in busy.json()["conflictingRequest"]["message"]
    agent_report(env, server_id, vm_state="stopped", power_state=4, task_state=None)
    assert show_server(env, server_id)["status"] == "SHUTOFF"
    assert act({"os-stop": None}).status_code == 409

    assert act({"os-start": None}).status_code == 202
    assert show_server(env, server_id)["OS-EXT-STS:task_state"] == "powering-on"
    agent_spawned(env, server_id)
    assert act({"reboot": {"type": "SOFT"}}).status_code == 202
    assert show_server(env, server_id)["status"] == "REBOOT"
    agent_spawned(env, server_id)
    assert act({"reboot": {"type": "HARD"}}).status_code == 202
    assert show_server(env, server_id)["status"] == "HARD_REBOOT"

    unknown = act({"frobnicate": None})
    assert unknown.status_code == 400
    assert unknown.json()["badRequest"]["message"] == "There is no such action: frobnicate"
    missing = env.compute(
        "POST", "/servers/00000000-0000-0000-0000-000000000000/action", json={"os-stop": None}
    )
    assert missing.status_code == 404


def test_delete_goes_through_the_agent_and_gone(env: ApiEnv, setup: dict[str, str]) -> None:
    before = usage(env, setup["provider"])
    server_id = create_server(env, "doomed", setup["flavor"], setup["image"])
    agent_spawned(env, server_id)
    assert usage(env, setup["provider"]) == before + 256
    gone_early = env.http.post(f"/filemem/v1/instances/{server_id}/gone")
    assert gone_early.status_code == 409  # nobody asked to delete it

    assert env.compute("DELETE", f"/servers/{server_id}").status_code == 204
    server = show_server(env, server_id)
    assert server["OS-EXT-STS:task_state"] == "deleting"
    assert (
        env.compute("POST", f"/servers/{server_id}/action", json={"os-stop": None}).status_code
        == 409
    )
    # A late report from the agent does not undo the deletion.
    agent_report(env, server_id, vm_state="active", task_state=None)
    assert show_server(env, server_id)["OS-EXT-STS:task_state"] == "deleting"

    assert server_id in agent_converge_deletes(env, HOST)
    assert env.compute("GET", f"/servers/{server_id}").status_code == 404
    assert usage(env, setup["provider"]) == before
    assert env.placement.get_allocations(server_id)[1] == {}
    assert env.http.post(f"/filemem/v1/instances/{server_id}/gone").status_code == 204
    assert agent_report(env, server_id, vm_state="active").status_code == 404
    assert env.compute("DELETE", f"/servers/{server_id}").status_code == 404


def test_no_valid_host_is_error_with_fault_and_no_allocation(
    env: ApiEnv, setup: dict[str, str]
) -> None:
    huge = make_flavor(env, "srv.huge", ram=1024 * 1024)
    server_id = create_server(env, "too-big", huge, setup["image"])
    server = show_server(env, server_id)
    assert server["status"] == "ERROR"
    assert server["OS-EXT-SRV-ATTR:host"] is None
    assert server["fault"]["message"].startswith("No valid host was found.")
    assert server["fault"]["code"] == 500
    assert env.placement.get_allocations(server_id)[1] == {}
    # Never scheduled: deleted at once, no agent involved.
    assert env.compute("DELETE", f"/servers/{server_id}").status_code == 204
    assert env.compute("GET", f"/servers/{server_id}").status_code == 404


def test_huge_pages_never_land_on_a_file_backed_host(env: ApiEnv, setup: dict[str, str]) -> None:
    flavor = make_flavor(env, "srv.hugepages", extra_specs={"hw:mem_page_size": "large"})
    server_id = create_server(env, "hp", flavor, setup["image"])
    server = show_server(env, server_id)
    assert server["status"] == "ERROR"
    assert (
        "COMPUTE_MEM_BACKING_FILE" in server["fault"]["message"]
        or "huge" in server["fault"]["message"].lower()
    ), server["fault"]


def test_bad_refs_are_400(env: ApiEnv, setup: dict[str, str]) -> None:
    for body, word in (
        ({"flavorRef": "nope", "imageRef": setup["image"]}, "flavorRef"),
        ({"flavorRef": setup["flavor"], "imageRef": "nope"}, "imageRef"),
    ):
        response = env.compute("POST", "/servers", json={"server": {"name": "x", **body}})
        assert response.status_code == 400
        assert word in response.json()["badRequest"]["message"]
    by_href = env.compute(
        "POST",
        "/servers",
        json={
            "server": {
                "name": "href",
                "flavorRef": f"{env.url}/flavors/{setup['flavor']}",
                "imageRef": f"{env.url}/images/{setup['image']}",
            }
        },
    )
    assert by_href.status_code == 202


def test_long_poll_waits_for_a_change_and_returns_the_full_set(
    env: ApiEnv, setup: dict[str, str]
) -> None:
    first = agent_watch(env, HOST)
    cursor = first["cursor"]
    assert all(i["host"] == HOST for i in first["instances"])
    started = time.monotonic()
    idle = agent_watch(env, HOST, since=cursor, wait=1)
    assert time.monotonic() - started >= 0.9
    assert idle["cursor"] == cursor
    assert len(idle["instances"]) == len(first["instances"])

    result: dict[str, Any] = {}

    def watch() -> None:
        result.update(agent_watch(env, HOST, since=cursor, wait=20))

    watcher = threading.Thread(target=watch)
    started = time.monotonic()
    watcher.start()
    time.sleep(0.5)
    server_id = create_server(env, "woken", setup["flavor"], setup["image"])
    watcher.join(timeout=30)
    assert time.monotonic() - started < 10
    assert result["cursor"] > cursor
    woken = next(i for i in result["instances"] if i["uuid"] == server_id)
    assert woken["flavor"]["memory_mb"] == 256
    assert woken["image"]["kind"] == "kernel" and woken["image"]["kernel_path"]


def test_agents_working_set_reports_show_in_the_server_view(
    env: ApiEnv, setup: dict[str, str]
) -> None:
    server = create_server(env, "ws-1", setup["flavor"], setup["image"])
    agent_spawned(env, server)
    assert "filemem:memory_usage" not in show_server(env, server)
    guest = {
        "nominal_bytes": 256 * 2**20,
        "store_bytes": 256 * 2**20,
        "resident_bytes": 64 * 2**20,
        "major_faults": 12,
        "sampled_at": "2026-12-02T14:00:00+00:00",
    }
    # Another host cannot write this host's instances: its report is ignored, not stored.
    other = env.http.put(
        "/filemem/v1/hosts/some-other-host/memory-usage", json={"guests": {server: guest}}
    )
    assert other.status_code == 200 and other.json() == {"stored": 0, "ignored": 1}
    assert "filemem:memory_usage" not in show_server(env, server)
    mine = env.http.put(f"/filemem/v1/hosts/{HOST}/memory-usage", json={"guests": {server: guest}})
    assert mine.status_code == 200 and mine.json() == {"stored": 1, "ignored": 0}
    assert show_server(env, server)["filemem:memory_usage"] == guest
    bad = env.http.put(
        f"/filemem/v1/hosts/{HOST}/memory-usage",
        json={"guests": {server: {**guest, "resident_bytes": -1}}},
    )
    assert bad.status_code == 400 and "resident_bytes" in bad.text


def test_user_data_config_drive_and_key_reach_the_agent_view(
    env: ApiEnv, setup: dict[str, str]
) -> None:
    """What the guest learns about itself goes from POST /servers to the agent over HTTP."""
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHv1cf9eTCiLTlHf6Ps2Ul4c0PcTOt0yFbDh2dtUqDUc t"
    made = env.compute(
        "POST", "/os-keypairs", json={"keypair": {"name": "cd-key", "public_key": key}}
    )
    assert made.status_code == 200, made.text
    user_data = base64.b64encode(b"#cloud-config\nruncmd: [true]\n").decode()
    server = {
        "name": "Config Drive_1",
        "flavorRef": setup["flavor"],
        "imageRef": setup["image"],
        "key_name": "cd-key",
        "config_drive": "true",
        "user_data": user_data,
        "metadata": {"role": "cd"},
    }
    response = env.compute("POST", "/servers", json={"server": server})
    assert response.status_code == 202, response.text
    server_id = response.json()["server"]["id"]
    shown = env.compute(
        "GET", f"/servers/{server_id}", headers={"OpenStack-API-Version": "compute 2.3"}
    ).json()["server"]
    assert shown["config_drive"] == "True"
    assert shown["OS-EXT-SRV-ATTR:user_data"] == user_data
    assert shown["OS-EXT-SRV-ATTR:hostname"] == "config-drive-1"
    # The key pair may go; the guest keeps the key it was booted with, as in nova.
    assert env.compute("DELETE", "/os-keypairs/cd-key").status_code == 202
    view = next(i for i in agent_watch(env, HOST)["instances"] if i["uuid"] == server_id)
    assert view["config_drive"] is True
    assert view["user_data"] == user_data
    assert view["hostname"] == "config-drive-1"
    assert (view["key_name"], view["public_keys"]) == ("cd-key", {"cd-key": key})
    assert view["metadata"] == {"role": "cd"}
    plain = create_server(env, "no-drive", setup["flavor"], setup["image"])
    assert show_server(env, plain)["config_drive"] == ""


@pytest.mark.parametrize(
    ("user_data", "why"),
    [("not base64!", "valid base 64"), ("QUFB" * 16384, "at most 65535 characters")],
)
def test_bad_user_data_is_400_naming_it(
    env: ApiEnv, setup: dict[str, str], user_data: str, why: str
) -> None:
    server = {
        "name": "bad-ud",
        "flavorRef": setup["flavor"],
        "imageRef": setup["image"],
        "user_data": user_data,
    }
    response = env.compute("POST", "/servers", json={"server": server})
    assert response.status_code == 400, response.text
    message = response.json()["badRequest"]["message"]
    assert "server.user_data" in message and why in message, message
