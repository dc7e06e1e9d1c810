"""The Placement client against real openstack-placement: embedded, standalone over HTTP, down."""

from __future__ import annotations

import json
import socket
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from oslo_config import cfg

from devtools.services import ReadyLine, ServiceProcess
from filemem.conf import default as default_opts
from filemem.conf import placement as placement_opts
from filemem.exceptions import PlacementError
from filemem.placement import client_from_conf
from filemem.placement.client import (
    InsufficientCapacity,
    PlacementClient,
    PlacementUnavailable,
    ResourceProviderNameConflict,
)
from filemem.placement.embedded import EmbeddedPlacement
from filemem.placement.http import HttpTransport
from tests.functional.placement_fixtures import REPO, StandalonePlacement

PROJECT = "b3f1e6a4c0d84f0c9d3b8a1f2e4c6d80"
USER = "9a7c5e3b1d2f4a6c8e0b2d4f6a8c0e1a"
TRAIT = "COMPUTE_MEM_BACKING_FILE"
HOST_INVENTORY = {
    "MEMORY_MB": {"total": 4096, "reserved": 512, "allocation_ratio": 1.0, "max_unit": 4096},
    "VCPU": {"total": 4, "allocation_ratio": 4.0},
}


def new_uuid() -> str:
    return str(uuid.uuid4())


# -- (a) embedded --------------------------------------------------------------------------


@pytest.fixture
def embedded(embedded_placement: EmbeddedPlacement) -> EmbeddedPlacement:
    return embedded_placement


def sync_host(client: PlacementClient, rp_uuid: str, name: str) -> None:
    """What the compute agent does on every periodic run."""
    client.ensure_resource_provider(rp_uuid, name)
    client.set_inventories(rp_uuid, HOST_INVENTORY)
    client.set_traits(rp_uuid, [TRAIT])


def test_embedded_sync_is_idempotent_and_a_no_change_sync_writes_nothing(
    embedded: EmbeddedPlacement,
) -> None:
    client = embedded.client()
    rp_uuid = new_uuid()
    sync_host(client, rp_uuid, f"host-{rp_uuid[:8]}")
    first_writes = client.write_count
    assert first_writes == 3  # POST provider, PUT inventories, PUT traits

    before = dict(client.method_counts)
    sync_host(client, rp_uuid, f"host-{rp_uuid[:8]}")
    assert client.write_count == first_writes
    assert client.method_counts["GET"] - before["GET"] == 3

    generation, inventories = client.get_inventories(rp_uuid)
    assert inventories["MEMORY_MB"]["total"] == 4096
    assert inventories["MEMORY_MB"]["reserved"] == 512
    assert inventories["MEMORY_MB"]["allocation_ratio"] == 1.0
    assert client.get_traits(rp_uuid)[1] == {TRAIT}
    # Changing one value writes once, and the generation moves on.
    changed = {**HOST_INVENTORY, "MEMORY_MB": {**HOST_INVENTORY["MEMORY_MB"], "total": 8192}}
    assert client.set_inventories(rp_uuid, changed) is True
    assert client.get_inventories(rp_uuid)[0] == generation + 1


def test_embedded_claim_over_capacity_and_delete(embedded: EmbeddedPlacement) -> None:
    client = embedded.client()
    rp_uuid = new_uuid()
    sync_host(client, rp_uuid, f"host-{rp_uuid[:8]}")
    first, second = new_uuid(), new_uuid()

    assert client.claim(first, rp_uuid, {"MEMORY_MB": 2048, "VCPU": 1}, PROJECT, USER)
    assert client.get_usages(rp_uuid) == {"MEMORY_MB": 2048, "VCPU": 1}
    assert client.get_provider_allocations(rp_uuid) == {first: {"MEMORY_MB": 2048, "VCPU": 1}}
    generation, allocations = client.get_allocations(first)
    assert generation is not None
    assert allocations == {rp_uuid: {"MEMORY_MB": 2048, "VCPU": 1}}

    # 4096 - 512 reserved - 2048 used leaves 1536.
    with pytest.raises(InsufficientCapacity) as info:
        client.claim(second, rp_uuid, {"MEMORY_MB": 2048}, PROJECT, USER)
    assert "exceed the capacity" in str(info.value)
    assert client.get_allocations(second) == (None, {})

    assert client.claim(second, rp_uuid, {"MEMORY_MB": 1536}, PROJECT, USER)
    assert client.delete_allocations(first) is True
    assert client.delete_allocations(first) is False
    assert client.delete_allocations(second) is True
    assert client.get_usages(rp_uuid) == {"MEMORY_MB": 0, "VCPU": 0}


def test_embedded_allocation_candidates_honour_forbidden_traits(
    embedded: EmbeddedPlacement,
) -> None:
    client = embedded.client()
    rp_uuid = new_uuid()
    sync_host(client, rp_uuid, f"host-{rp_uuid[:8]}")
    wanted = {"MEMORY_MB": 512, "VCPU": 1}
    with_trait = client.allocation_candidates(wanted, required_traits=[TRAIT])
    assert {rp_uuid: wanted} in with_trait.allocation_requests
    assert TRAIT in with_trait.provider_summaries[rp_uuid]["traits"]
    without = client.allocation_candidates(wanted, forbidden_traits=[TRAIT])
    assert all(rp_uuid not in req for req in without.allocation_requests)


def test_embedded_name_conflict_and_one_database_per_process(
    embedded: EmbeddedPlacement, tmp_path: Path
) -> None:
    client = embedded.client()
    name = f"host-{new_uuid()[:8]}"
    owner = client.ensure_resource_provider(new_uuid(), name)
    with pytest.raises(ResourceProviderNameConflict) as info:
        client.ensure_resource_provider(new_uuid(), name)
    assert owner.uuid in str(info.value)

    assert EmbeddedPlacement(embedded.state_path).app is embedded.app
    with pytest.raises(PlacementError, match="one Placement database per process"):
        EmbeddedPlacement(tmp_path / "other")


# -- (b) standalone over HTTP --------------------------------------------------------------


@pytest.fixture(scope="module")
def standalone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m filemem.cmd.placement` on a free loopback port; yields its URL."""
    placement = StandalonePlacement(tmp_path_factory.mktemp("placement-standalone"))
    yield placement.start()
    assert placement.stop(15) == 0, placement.tail()  # a clean exit on SIGTERM


def http_client(url: str) -> PlacementClient:
    return PlacementClient(HttpTransport.with_token(url, "admin"))


def test_standalone_sync_over_http_via_conf(standalone: str, tmp_path: Path) -> None:
    conf = cfg.ConfigOpts()
    conf.register_opts(default_opts.OPTS)
    conf.register_opts(placement_opts.OPTS, group=placement_opts.GROUP)
    conf([], default_config_files=[])
    conf.set_override("endpoint", standalone, group="placement")
    conf.set_override("state_path", str(tmp_path))
    client = client_from_conf(conf)
    assert isinstance(client.transport, HttpTransport)
    rp_uuid = new_uuid()
    sync_host(client, rp_uuid, f"host-{rp_uuid[:8]}")
    writes = client.write_count
    sync_host(client, rp_uuid, f"host-{rp_uuid[:8]}")
    assert client.write_count == writes == 3
    assert client.get_traits(rp_uuid)[1] == {TRAIT}


def race_worker(url: str, rp_uuid: str, go_file: str, claims: int) -> None:
    """Child process: wait for the go file, claim 512 MB `claims` times, print a JSON tally."""
    client = http_client(url)
    print("ready", flush=True)
    while not Path(go_file).exists():
        time.sleep(0.005)
    tally: dict[str, Any] = {"won": 0, "capacity": 0, "other": [], "seconds": 0.0}
    start = time.monotonic()
    for _ in range(claims):
        try:
            client.claim(new_uuid(), rp_uuid, {"MEMORY_MB": 512}, PROJECT, USER)
            tally["won"] += 1
        except InsufficientCapacity:
            tally["capacity"] += 1
        except PlacementError as exc:
            tally["other"].append(str(exc))
    tally["seconds"] = time.monotonic() - start
    tally["requests"] = client.request_count
    print(json.dumps(tally), flush=True)


def _start_worker(url: str, rp_uuid: str, go_file: Path, log: Path) -> ServiceProcess:
    code = (
        "import sys; from tests.functional.test_placement_real import race_worker; "
        "race_worker(sys.argv[1], sys.argv[2], sys.argv[3], 20)"
    )
    worker = ServiceProcess(
        [sys.executable, "-c", code, url, rp_uuid, str(go_file)],
        log_path=log,
        ready=ReadyLine("^ready$"),
        cwd=REPO,
        name="race worker",
    )
    worker.start()
    return worker


def test_two_processes_racing_claims_never_overcommit(standalone: str, tmp_path: Path) -> None:
    client = http_client(standalone)
    rp_uuid = new_uuid()
    client.ensure_resource_provider(rp_uuid, f"race-{rp_uuid[:8]}")
    client.set_inventories(rp_uuid, {"MEMORY_MB": {"total": 4096, "max_unit": 4096}})
    go_file = tmp_path / "go"
    workers = [
        _start_worker(standalone, rp_uuid, go_file, tmp_path / f"worker-{i}.log") for i in range(2)
    ]

    go_file.touch()
    peak = 0
    while any(w.running for w in workers):
        peak = max(peak, client.get_usages(rp_uuid).get("MEMORY_MB", 0))
        time.sleep(0.01)
    tallies = []
    for worker in workers:
        assert worker.wait(60) == 0, worker.tail()
        tallies.append(json.loads(worker.output()[-1]))

    assert [t["other"] for t in tallies] == [[], []]
    assert sum(t["won"] for t in tallies) == 8
    assert sum(t["capacity"] for t in tallies) == 32
    assert peak <= 4096
    assert client.get_usages(rp_uuid) == {"MEMORY_MB": 4096}
    assert len(client.get_provider_allocations(rp_uuid)) == 8
    seconds = max(t["seconds"] for t in tallies)
    print(
        f"\n40 racing claims over HTTP in {seconds:.2f} s ({40 / seconds:.0f} claims/s), "
        f"requests per worker: {[t['requests'] for t in tallies]}"
    )


# -- (c) Placement down --------------------------------------------------------------------


def test_placement_down_names_the_endpoint() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Closed now: nothing listens on that port.
    endpoint = f"http://127.0.0.1:{port}"
    client = PlacementClient(HttpTransport.with_token(endpoint, "admin", timeout=5))
    with pytest.raises(PlacementUnavailable) as info:
        client.get_resource_provider(new_uuid())
    assert endpoint in str(info.value)
    assert info.value.endpoint == endpoint
