"""Parallel creates beyond capacity: exactly the capacity is scheduled, nothing over-committed."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from tests.functional.api_fixtures import (
    ApiEnv,
    api_env,
    create_server,
    http_client,
    make_flavor,
    make_image,
    register_host,
    show_server,
)

N = 8
M = 3
FLAVOR_MB = 512


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("api-concurrency")) as running:
        yield running


def test_n_parallel_creates_for_capacity_m(env: ApiEnv) -> None:
    # Room for exactly M guests of the flavor (and plenty of VCPU).
    provider = register_host(env, "busy-host", memory_mb=M * FLAVOR_MB + FLAVOR_MB // 2, vcpus=64)
    flavor = make_flavor(env, "conc", ram=FLAVOR_MB)
    image = make_image(env, "conc")
    ids: list[str] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(N)

    def create(i: int) -> None:
        try:
            with http_client(env.url) as http:
                barrier.wait()
                ids.append(create_server(env, f"conc-{i}", flavor, image, http=http))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(N)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(ids) == N

    servers = [show_server(env, server_id) for server_id in ids]
    scheduled = [s for s in servers if s["OS-EXT-SRV-ATTR:host"] == "busy-host"]
    failed = [s for s in servers if s["status"] == "ERROR"]
    assert len(scheduled) == M, [(s["status"], s.get("fault")) for s in servers]
    assert len(failed) == N - M
    assert all(s["fault"]["message"].startswith("No valid host") for s in failed)
    assert all(s["OS-EXT-SRV-ATTR:host"] is None for s in failed)

    assert env.placement.get_usages(provider)["MEMORY_MB"] == M * FLAVOR_MB
    consumers = env.placement.get_provider_allocations(provider)
    assert set(consumers) == {s["id"] for s in scheduled}
