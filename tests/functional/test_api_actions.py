"""Server actions over real HTTP with real Placement: state checks, records, resize allocations.

The agent is played through its HTTP API (as test_api_servers does); real guests go through
these actions in test_guest_actions and the openstack CLI day test.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import httpx
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

HOST = "act-host-1"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    state = tmp_path_factory.mktemp("api-actions")
    with api_env(state, default="allow_resize_to_same_host = true\n") as running:
        yield running


@pytest.fixture(scope="module")
def setup(env: ApiEnv) -> dict[str, str]:
    provider = register_host(env, HOST, memory_mb=8192, vcpus=32)
    return {
        "provider": provider,
        "small": make_flavor(env, "act.small", ram=256),
        "big": make_flavor(env, "act.big", ram=512, vcpus=2),
        "huge": make_flavor(env, "act.huge", ram=16384),
        "image": make_image(env, "act-image"),
        "image2": make_image(env, "act-image-2"),
    }


def act(env: ApiEnv, server_id: str, body: dict[str, Any], version: str = "2.37") -> httpx.Response:
    return env.http.post(
        f"/v2.1/servers/{server_id}/action",
        json=body,
        headers={"OpenStack-API-Version": f"compute {version}"},
    )


def migrations_of(env: ApiEnv, server_id: str) -> list[dict[str, Any]]:
    response = env.http.get(
        "/v2.1/os-migrations",
        params={"instance_uuid": server_id},
        headers={"OpenStack-API-Version": "compute 2.23"},
    )
    assert response.status_code == 200, response.text
    migrations: list[dict[str, Any]] = response.json()["migrations"]
    return migrations


def held_consumers(env: ApiEnv) -> list[str]:
    """The migration consumers the agent is told to keep (its heal must not drop them)."""
    instances = agent_watch(env, HOST)["instances"]
    return [uuid for i in instances for uuid in i["migration_uuids"]]


def active_server(env: ApiEnv, setup: dict[str, str], name: str) -> str:
    server_id = create_server(env, name, setup["small"], setup["image"])
    agent_spawned(env, server_id)
    return server_id


def message(response: httpx.Response) -> str:
    body = response.json()
    return str(next(iter(body.values()))["message"])


def actions_of(env: ApiEnv, server_id: str) -> list[str]:
    response = env.compute("GET", f"/servers/{server_id}/os-instance-actions")
    assert response.status_code == 200, response.text
    return [a["action"] for a in response.json()["instanceActions"]]


def test_pause_unpause_suspend_resume(env: ApiEnv, setup: dict[str, str]) -> None:
    server_id = active_server(env, setup, "pausable")
    assert act(env, server_id, {"unpause": None}).status_code == 409
    assert act(env, server_id, {"pause": None}).status_code == 202
    assert show_server(env, server_id)["OS-EXT-STS:task_state"] == "pausing"
    agent_report(env, server_id, vm_state="paused", power_state=3, task_state=None)
    assert show_server(env, server_id)["status"] == "PAUSED"
    refused = act(env, server_id, {"suspend": None})
    assert refused.status_code == 409 and "vm_state paused" in message(refused)
    assert act(env, server_id, {"unpause": None}).status_code == 202
    agent_spawned(env, server_id)
    assert act(env, server_id, {"suspend": None}).status_code == 202
    agent_report(env, server_id, vm_state="suspended", power_state=4, task_state=None)
    assert show_server(env, server_id)["status"] == "SUSPENDED"
    assert act(env, server_id, {"resume": None}).status_code == 202
    assert show_server(env, server_id)["OS-EXT-STS:task_state"] == "resuming"
    agent_spawned(env, server_id)
    assert actions_of(env, server_id)[:5] == ["resume", "suspend", "unpause", "pause", "create"]


def test_unsupported_and_unknown_actions_say_so(env: ApiEnv, setup: dict[str, str]) -> None:
    server_id = active_server(env, setup, "refusals")
    shelve = act(env, server_id, {"shelve": None})
    assert shelve.status_code == 400
    assert message(shelve).startswith("filemem does not support the server action 'shelve'")
    assert message(act(env, server_id, {"frobnicate": {}})) == "There is no such action: frobnicate"
    # trigger_crash_dump only exists from 2.17.
    old = act(env, server_id, {"trigger_crash_dump": None}, version="2.16")
    assert message(old) == "There is no such action: trigger_crash_dump"
    two = act(env, server_id, {"pause": None, "unpause": None})
    assert two.status_code == 400
    bad_reboot = act(env, server_id, {"reboot": {"type": "GENTLE"}})
    assert bad_reboot.status_code == 400 and "reboot.type" in message(bad_reboot)
    # One host: no other host can take the guest (before 2.34 nova's prechecks answer 400).
    auto = {"os-migrateLive": {"host": None, "block_migration": "auto"}}
    live = act(env, server_id, auto, "2.33")
    assert live.status_code == 400 and message(live).startswith("No valid host was found.")
    # 2.25 dropped disk_over_commit; the 2.1 body is refused there, as nova does.
    old_body = {"host": None, "block_migration": False, "disk_over_commit": False}
    assert act(env, server_id, {"os-migrateLive": old_body}, "2.25").status_code == 400
    assert message(act(env, server_id, {"os-migrateLive": old_body}, "2.24")).startswith(
        "No valid host was found."
    )


def test_lock_records_and_crash_dump_reaches_the_agent(env: ApiEnv, setup: dict[str, str]) -> None:
    server_id = active_server(env, setup, "lockable")
    assert act(env, server_id, {"lock": None}).status_code == 202
    assert act(env, server_id, {"unlock": None}).status_code == 202
    assert act(env, server_id, {"trigger_crash_dump": None}).status_code == 202
    wanted = {i["uuid"]: i for i in agent_watch(env, HOST)["instances"]}[server_id]
    assert wanted["crash_dump_requested"] is True
    assert actions_of(env, server_id)[:3] == ["trigger_crash_dump", "unlock", "lock"]
    agent_report(env, server_id, crash_dump_requested=False)
    stopped = act(env, server_id, {"os-stop": None})
    assert stopped.status_code == 202
    agent_report(env, server_id, vm_state="stopped", power_state=4, task_state=None)
    not_running = act(env, server_id, {"trigger_crash_dump": None})
    assert not_running.status_code == 409


def test_rebuild_changes_the_image_and_keeps_the_server(env: ApiEnv, setup: dict[str, str]) -> None:
    server_id = active_server(env, setup, "rebuildable")
    missing = act(env, server_id, {"rebuild": {"imageRef": "00000000-0000-0000-0000-00000000abcd"}})
    assert missing.status_code == 400
    response = act(env, server_id, {"rebuild": {"imageRef": setup["image2"], "name": "rebuilt"}})
    assert response.status_code == 202, response.text
    server = response.json()["server"]
    assert server["status"] == "REBUILD" and server["name"] == "rebuilt"
    assert server["image"]["id"] == setup["image2"]
    described = act(
        env, server_id, {"rebuild": {"imageRef": setup["image"], "description": "x"}}, "2.18"
    )
    assert described.status_code == 400 and "description" in message(described)
    agent_spawned(env, server_id)
    assert show_server(env, server_id)["status"] == "ACTIVE"


def allocations(env: ApiEnv, consumer: str) -> dict[str, dict[str, int]]:
    return env.placement.get_allocations(consumer)[1]


def test_resize_holds_the_old_flavor_until_confirm(env: ApiEnv, setup: dict[str, str]) -> None:
    provider = setup["provider"]
    server_id = active_server(env, setup, "resizable")
    same = act(env, server_id, {"resize": {"flavorRef": setup["small"]}})
    assert message(same) == "When resizing, instances must change flavor!"
    too_big = act(env, server_id, {"resize": {"flavorRef": setup["huge"]}})
    assert too_big.status_code == 400 and "No valid host" in message(too_big)
    assert allocations(env, server_id) == {provider: {"MEMORY_MB": 256, "VCPU": 1}}

    assert act(env, server_id, {"resize": {"flavorRef": setup["big"]}}).status_code == 202
    server = show_server(env, server_id)
    assert server["status"] == "RESIZE" and server["flavor"]["id"] == setup["big"]
    (migration,) = migrations_of(env, server_id)
    assert migration["status"] == "migrating" and migration["migration_type"] == "resize"
    assert allocations(env, server_id) == {provider: {"MEMORY_MB": 512, "VCPU": 2}}
    held = held_consumers(env)
    assert len(held) == 1
    assert allocations(env, held[0]) == {provider: {"MEMORY_MB": 256, "VCPU": 1}}

    agent_report(env, server_id, vm_state="resized", power_state=1, task_state=None)
    assert show_server(env, server_id)["status"] == "VERIFY_RESIZE"
    assert act(env, server_id, {"confirmResize": None}).status_code == 204
    assert show_server(env, server_id)["status"] == "ACTIVE"
    assert allocations(env, held[0]) == {}
    assert allocations(env, server_id) == {provider: {"MEMORY_MB": 512, "VCPU": 2}}
    (done,) = migrations_of(env, server_id)
    assert done["status"] == "confirmed"
    assert act(env, server_id, {"confirmResize": None}).status_code == 409


def test_resize_revert_moves_the_allocation_back_once_the_agent_is_done(
    env: ApiEnv, setup: dict[str, str]
) -> None:
    provider = setup["provider"]
    server_id = active_server(env, setup, "revertible")
    assert act(env, server_id, {"resize": {"flavorRef": setup["big"]}}).status_code == 202
    agent_report(env, server_id, vm_state="resized", power_state=1, task_state=None)
    (held,) = held_consumers(env)
    assert act(env, server_id, {"revertResize": None}).status_code == 202
    server = show_server(env, server_id)
    assert server["status"] == "REVERT_RESIZE" and server["flavor"]["id"] == setup["small"]
    # Until the agent runs the small flavor again, the big one stays counted.
    assert allocations(env, server_id) == {provider: {"MEMORY_MB": 512, "VCPU": 2}}
    agent_report(env, server_id, vm_state="active", power_state=1, task_state=None)
    assert allocations(env, server_id) == {provider: {"MEMORY_MB": 256, "VCPU": 1}}
    assert allocations(env, held) == {}
    assert show_server(env, server_id)["status"] == "ACTIVE"
    assert actions_of(env, server_id)[:2] == ["revertResize", "resize"]


def test_deleting_during_a_resize_releases_both_consumers(
    env: ApiEnv, setup: dict[str, str]
) -> None:
    server_id = active_server(env, setup, "resize-then-delete")
    assert act(env, server_id, {"resize": {"flavorRef": setup["big"]}}).status_code == 202
    (held,) = [c for c in held_consumers(env) if allocations(env, c)]
    assert env.compute("DELETE", f"/servers/{server_id}").status_code == 204
    assert server_id in agent_converge_deletes(env, HOST)
    assert allocations(env, server_id) == {} and allocations(env, held) == {}


def test_resize_refused_without_allow_resize_to_same_host(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with api_env(tmp_path_factory.mktemp("api-no-resize")) as env:
        register_host(env, "no-resize-host")
        small = make_flavor(env, "nr.small", ram=256)
        big = make_flavor(env, "nr.big", ram=512)
        server_id = create_server(env, "nr", small, make_image(env, "nr-image"))
        agent_spawned(env, server_id)
        refused = act(env, server_id, {"resize": {"flavorRef": big}})
        assert refused.status_code == 400
        assert "allow_resize_to_same_host" in message(refused)


def test_console_output_waits_for_the_agent(env: ApiEnv, setup: dict[str, str]) -> None:
    server_id = active_server(env, setup, "console")

    answered: dict[str, httpx.Response] = {}

    def ask() -> None:
        answered["response"] = act(env, server_id, {"os-getConsoleOutput": {"length": 2}})

    asker = threading.Thread(target=ask)
    asker.start()
    requested = None
    for _ in range(100):
        wanted = {i["uuid"]: i for i in agent_watch(env, HOST)["instances"]}[server_id]
        requested = wanted["console_requested_at"]
        if requested:
            break
        threading.Event().wait(0.05)
    assert requested, "the agent never saw the console request"
    put = env.http.put(
        f"/filemem/v1/instances/{server_id}/console",
        json={"output": "one\ntwo\x07\nthree", "requested_at": requested},
    )
    assert put.status_code in (200, 204), put.text
    asker.join(timeout=15)
    response = answered["response"]
    assert response.status_code == 200, response.text
    assert response.json() == {"output": "two\nthree"}
