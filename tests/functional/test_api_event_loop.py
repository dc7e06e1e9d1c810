"""Requests that could hold the API's event loop or its threads, over real HTTP: a name filter
with catastrophic backtracking and a flood of console requests an agent never answers must not
delay anyone else's requests."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from filemem.api.identity import DEFAULT_PROJECT_ID
from tests.functional.api_fixtures import (
    ApiEnv,
    agent_spawned,
    agent_watch,
    api_env,
    create_server,
    make_flavor,
    make_image,
    register_host,
)

HOST = "loop-host-1"
# Python's re needs about 2**len seconds to refuse "(a+)+$" on this name: ~10 s at 27.
EVIL_NAME = "a" * 27 + "!"
EVIL_PATTERN = "(a+)+$"
# Well under a second: what another caller may wait while someone else's request runs.
PROMPT = 1.0


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("api-event-loop")) as running:
        yield running


@pytest.fixture(scope="module")
def setup(env: ApiEnv) -> dict[str, str]:
    register_host(env, HOST, memory_mb=8192, vcpus=32)
    # The flood test alone boots 10 servers: more than the default quota.
    unlimited = {"quota_set": {"instances": -1, "cores": -1, "ram": -1}}
    response = env.compute("PUT", f"/os-quota-sets/{DEFAULT_PROJECT_ID}", json=unlimited)
    assert response.status_code == 200, response.text
    return {"flavor": make_flavor(env, "loop.small"), "image": make_image(env, "loop-image")}


def timed_get(env: ApiEnv, path: str, **params: str) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = env.http.get(f"/v2.1{path}", params=params)
    return response, time.monotonic() - start


def test_a_backtracking_name_filter_answers_at_once_and_delays_no_one(
    env: ApiEnv, setup: dict[str, str]
) -> None:
    evil = create_server(env, EVIL_NAME, setup["flavor"], setup["image"])
    outcome: dict[str, tuple[httpx.Response, float]] = {}

    def filter_by_regex() -> None:
        outcome["filter"] = timed_get(env, "/servers", name=EVIL_PATTERN)

    filtering = threading.Thread(target=filter_by_regex)
    filtering.start()
    time.sleep(0.2)
    plain, plain_took = timed_get(env, "/servers")
    filtering.join(timeout=120)
    response, took = outcome["filter"]
    assert plain.status_code == 200 and plain_took < PROMPT, plain_took
    assert response.status_code == 200, response.text
    assert took < PROMPT, took
    assert evil not in [s["id"] for s in response.json()["servers"]]


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=a)a", "(?<!b)a"])
def test_a_name_filter_the_matcher_cannot_run_is_400_naming_the_filter(
    env: ApiEnv, pattern: str
) -> None:
    response, took = timed_get(env, "/servers/detail", name=pattern)
    assert response.status_code == 400, response.text
    assert "name" in response.json()["badRequest"]["message"]
    assert took < PROMPT


def test_a_name_filter_still_matches_as_a_regular_expression(
    env: ApiEnv, setup: dict[str, str]
) -> None:
    web = create_server(env, "web-12", setup["flavor"], setup["image"])
    other = create_server(env, "db-web-x", setup["flavor"], setup["image"])
    response, _ = timed_get(env, "/servers", name=r"^web-\d+$")
    found = [s["id"] for s in response.json()["servers"]]
    assert web in found and other not in found
    response, _ = timed_get(env, "/servers", name="WEB")
    assert response.json()["servers"] == []


def console(env: ApiEnv, server_id: str) -> tuple[int, float, str]:
    start = time.monotonic()
    response = env.http.post(
        f"/v2.1/servers/{server_id}/action", json={"os-getConsoleOutput": {"length": 5}}
    )
    return response.status_code, time.monotonic() - start, response.text


def test_a_flood_of_unanswered_console_requests_starves_nothing(
    env: ApiEnv, setup: dict[str, str]
) -> None:
    """60 console requests on 10 servers whose agent never answers: at most 4 wait per server
    and 32 in all ([api] defaults), the rest are refused at once (429), and GET /servers and
    the agent's own calls answer promptly meanwhile."""
    servers = [create_server(env, f"flood-{i}", setup["flavor"], setup["image"]) for i in range(10)]
    for server_id in servers:
        agent_spawned(env, server_id)
    with ThreadPoolExecutor(max_workers=60) as pool:
        asked = [pool.submit(console, env, s) for s in servers * 6]
        time.sleep(1.0)
        plain, plain_took = timed_get(env, "/servers")
        start = time.monotonic()
        agent_watch(env, HOST)
        agent_took = time.monotonic() - start
        results = [future.result() for future in asked]
    assert plain.status_code == 200 and plain_took < PROMPT, plain_took
    assert agent_took < PROMPT, agent_took
    refused = [r for r in results if r[0] == 429]
    waited = [r for r in results if r[0] == 503]
    assert len(refused) == 28 and len(waited) == 32, sorted(r[0] for r in results)
    assert all(took < PROMPT for _, took, _ in refused), [r[1] for r in refused]
    assert "console" in refused[0][2]


def test_console_slots_are_given_back(env: ApiEnv, setup: dict[str, str]) -> None:
    """After requests ended (answered, timed out or refused) a new one waits for the agent."""
    server_id = create_server(env, "slots", setup["flavor"], setup["image"])
    agent_spawned(env, server_id)
    with ThreadPoolExecutor(max_workers=1) as pool:
        asked = pool.submit(console, env, server_id)
        requested = None
        deadline = time.monotonic() + 10
        while not requested and time.monotonic() < deadline:
            wanted = {i["uuid"]: i for i in agent_watch(env, HOST)["instances"]}[server_id]
            requested = wanted["console_requested_at"]
            time.sleep(0.05)
        assert requested, "the agent never saw the console request"
        start = time.monotonic()
        put = env.http.put(
            f"/filemem/v1/instances/{server_id}/console",
            json={"output": "hello", "requested_at": requested},
        )
        assert put.status_code == 204, put.text
        status, _, text = asked.result()
        answered_after = time.monotonic() - start
    assert status == 200 and "hello" in text, text
    # This process wakes its waiter when the agent's answer commits: no polling delay.
    assert answered_after < PROMPT, answered_after
