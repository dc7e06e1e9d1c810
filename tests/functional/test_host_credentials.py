"""Host credentials over real HTTP: a standalone Placement and filemem-api as processes, the
`filemem host credential` CLI, raw requests as two hosts' agents; then a real filemem-compute
holding only its credential file boots and deletes a libvirt guest."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devtools.test_image import TestImage
from filemem.compute.tracker import PROVIDER_UUID_FILE
from tests.functional.api_fixtures import (
    TOKEN,
    ApiEnv,
    api_env,
    http_client,
    make_flavor,
    make_image,
    register_host,
)
from tests.functional.cloud import Cloud, domain_exists, memory_dirs
from tests.functional.placement_fixtures import REPO

F = "/filemem/v1"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("host-credentials")) as running:
        yield running


def cli(env: ApiEnv, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`filemem host credential ...` as an operator runs it, against the running API."""
    conf = tmp / "cli.conf"
    conf.write_text(f"[DEFAULT]\nstate_path = {tmp / 'cli-state'}\n")
    argv = [sys.executable, "-m", "filemem.cmd.cli", "--config-file", str(conf)]
    argv += ["host", "credential", *args, "--os-endpoint", env.url, "--os-token", TOKEN]
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)


def boot_on(env: ApiEnv, host: str, flavor: str, image: str) -> str:
    body = {"name": f"on-{host}", "flavorRef": flavor, "imageRef": image}
    response = env.compute(
        "POST", "/servers", json={"server": {**body, "availability_zone": f"nova:{host}"}}
    )
    assert response.status_code == 202, response.text
    server_id = str(response.json()["server"]["id"])
    shown = env.compute("GET", f"/servers/{server_id}").json()["server"]
    assert shown["OS-EXT-SRV-ATTR:host"] == host, shown
    return server_id


def forbidden(response: httpx.Response, host: str) -> None:
    assert response.status_code == 403, response.text
    message = response.json()["forbidden"]["message"]
    # The Compute API's policy refuses first (nova's message); the agent API names the host.
    assert f"credential of host {host}" in message or "Policy doesn't allow" in message, message


def test_a_host_credential_reaches_its_own_host_only(env: ApiEnv, tmp_path: Path) -> None:
    # Host A's credential from the CLI, into a 0600 file; host B's over raw HTTP.
    secret_file = tmp_path / "host-a.credential"
    made = cli(env, tmp_path, "create", "host-a", "--output", str(secret_file))
    assert made.returncode == 0, made.stderr
    assert secret_file.stat().st_mode & 0o777 == 0o600
    secret_a = secret_file.read_text().strip()
    assert secret_a not in made.stdout + made.stderr
    again = cli(env, tmp_path, "create", "host-a", "--output", str(secret_file))
    assert again.returncode == 1 and "--force" in again.stderr
    assert secret_file.read_text().strip() == secret_a
    response = env.http.post(f"{F}/hosts/host-b/credentials")
    assert response.status_code == 201, response.text
    secret_b = response.json()["credential"]["secret"]

    with http_client(env.url, secret_a) as as_a, http_client(env.url, secret_b) as as_b:
        # A registers and heartbeats itself, and watches itself; B registers itself.
        provider = register_host(env, "host-a", http=as_a)
        heartbeat = {"binary": "filemem-compute", "provider_uuid": provider, "file_backed": True}
        assert as_a.put(f"{F}/services/host-a", json=heartbeat).status_code == 200
        register_host(env, "host-b", http=as_b)
        watch = as_a.get(f"{F}/hosts/host-a/instances", params={"wait": 0})
        assert watch.status_code == 200, watch.text
        forbidden(as_a.get(f"{F}/hosts/host-b/instances"), "host-a")
        service = {"binary": "filemem-compute", "provider_uuid": str(uuidlib.uuid4())}
        forbidden(as_a.put(f"{F}/services/host-b", json=service), "host-a")
        forbidden(as_a.put(f"{F}/hosts/host-b/memory-usage", json={"guests": {}}), "host-a")

        flavor, image = make_flavor(env, "cred.small"), make_image(env, "cred-kernel")
        on_a, on_b = (boot_on(env, h, flavor, image) for h in ("host-a", "host-b"))
        report = {"vm_state": "active", "power_state": 1, "task_state": None}
        reported = as_a.patch(f"{F}/instances/{on_a}", json=report)
        assert reported.status_code == 200, reported.text
        assert [i["uuid"] for i in as_a.get(f"{F}/hosts/host-a/instances").json()["instances"]] == [
            on_a
        ]
        for method, path, body in _instance_calls(on_b):
            forbidden(as_a.request(method, path, json=body), "host-a")
        shown = env.compute("GET", f"/servers/{on_b}").json()["server"]
        assert shown["OS-EXT-STS:vm_state"] == "building", "B's instance is untouched"

        # Nothing of the Compute API, nor the credentials, for a host credential.
        forbidden(as_a.get("/v2.1/servers"), "host-a")
        forbidden(as_a.post("/v2.1/servers", json={"server": {}}), "host-a")
        forbidden(as_a.post(f"{F}/hosts/host-a/credentials"), "host-a")
        forbidden(as_a.get(f"{F}/hosts/host-a/credentials"), "host-a")

        # The admin token still may do everything: B's instance, B's watch.
        assert env.http.patch(f"{F}/instances/{on_b}", json=report).status_code == 200
        assert env.http.get(f"{F}/hosts/host-b/instances").status_code == 200

        # Revoked (through the CLI): 401 within the authenticator's cache time.
        listed = cli(env, tmp_path, "list", "host-a", "--json")
        assert listed.returncode == 0, listed.stderr
        [credential] = json.loads(listed.stdout)
        assert "secret" not in credential and credential["last_used_at"] is not None
        revoked = cli(env, tmp_path, "revoke", "host-a", str(credential["id"]))
        assert revoked.returncode == 0, revoked.stderr
        _wait_for_401(as_a, f"{F}/hosts/host-a/instances", within=10)
        assert as_b.get(f"{F}/hosts/host-b/instances").status_code == 200


def _credential(env: ApiEnv, host: str) -> str:
    response = env.http.post(f"{F}/hosts/{host}/credentials")
    assert response.status_code == 201, response.text
    return str(response.json()["credential"]["secret"])


def _provider_state(env: ApiEnv, provider: str) -> tuple[Any, ...]:
    _generation, inventories = env.placement.get_inventories(provider)
    allocations = env.placement.get_provider_allocations(provider)
    named = env.placement.get_resource_provider(provider)
    return inventories, allocations, named.name if named else None


def test_a_host_credential_cannot_take_another_hosts_provider(env: ApiEnv) -> None:
    """The attack of issue 18 item 5: otherhost's credential registers vm's provider with
    invented capacity. 409 naming vm; vm's provider, inventory and allocations stay vm's."""
    with (
        http_client(env.url, _credential(env, "prov-vm")) as as_vm,
        http_client(env.url, _credential(env, "prov-other")) as as_other,
    ):
        provider = register_host(env, "prov-vm", http=as_vm)
        flavor, image = make_flavor(env, "prov.small"), make_image(env, "prov-kernel")
        server = boot_on(env, "prov-vm", flavor, image)
        before = _provider_state(env, provider)
        assert server in before[1]
        rogue = {
            "binary": "filemem-compute",
            "provider_uuid": provider,
            "file_backed": True,
            "file_backed_memory_mb": 1_000_000,
            "store_free_mb": 1_000_000,
        }
        response = as_other.put(f"{F}/services/prov-other", json=rogue)
        assert response.status_code == 409, response.text
        message = response.json()["conflictingRequest"]["message"]
        assert f"Resource provider {provider} belongs to host prov-vm" in message, message
        # Registered with a provider of its own, it may not move onto vm's either.
        own = register_host(env, "prov-other", http=as_other)
        response = as_other.put(f"{F}/services/prov-other", json=rogue)
        assert response.status_code == 409 and "belongs to host prov-vm" in response.text
        assert _provider_state(env, provider) == before
        # vm's own heartbeat with invented capacity: capped at vm's inventory in Placement.
        shown = as_vm.put(f"{F}/services/prov-vm", json=rogue).json()["service"]
        assert (shown["file_backed_memory_mb"], shown["store_free_mb"]) == (4096, 4096 - 256)
        hypervisors = env.http.get(f"{F}/hypervisors").json()["hypervisors"]
        by_host = {h["hypervisor_hostname"]: h for h in hypervisors}
        assert by_host["prov-vm"]["provider_uuid"] == provider
        assert by_host["prov-other"]["provider_uuid"] == own


def _instance_calls(uuid: str) -> list[tuple[str, str, Any]]:
    now = "2026-12-03T00:00:00"
    event = {"event": "compute_start_instance", "result": "Success"}
    return [
        ("PATCH", f"{F}/instances/{uuid}", {"vm_state": "error"}),
        ("POST", f"{F}/instances/{uuid}/gone", None),
        ("PUT", f"{F}/instances/{uuid}/console", {"output": "x", "requested_at": now}),
        ("POST", f"{F}/instances/{uuid}/events", {**event, "start_time": now, "finish_time": now}),
    ]


def _wait_for_401(http: httpx.Client, path: str, within: float) -> None:
    started = time.monotonic()
    while time.monotonic() - started < within:
        status = http.get(path).status_code
        if status == 401:
            return
        assert status == 200, status
        time.sleep(0.5)
    raise AssertionError(f"a revoked credential still worked after {within} s")


# -- a real agent with only its credential -----------------------------------------------------


@pytest.fixture
def cloud(libvirtd: None) -> Iterator[Cloud]:
    cloud = Cloud()
    try:
        yield cloud
    finally:
        cloud.close()


def test_an_agent_with_only_its_credential_boots_and_deletes_a_guest(
    cloud: Cloud, test_image: TestImage
) -> None:
    host = "cred-host"
    response = cloud.http.post(f"{cloud.api_url}{F}/hosts/{host}/credentials")
    assert response.status_code == 201, response.text
    secret_file = cloud.base / f"{host}.credential"
    secret_file.write_text(response.json()["credential"]["secret"])
    secret_file.chmod(0o600)
    cloud.start_agent(host, 1024, credential_file=secret_file)
    conf = (cloud.base / f"{host}.conf").read_text()
    assert TOKEN not in conf and "api_token" not in conf and "admin_token" not in conf

    image = cloud.test_image(test_image.kernel, test_image.initrd, test_image.cmdline())
    server = cloud.create("cred-vm", cloud.flavor("cred.small", 256), image)
    shown = cloud.wait_status(server, "ACTIVE", timeout=180)
    assert shown["OS-EXT-SRV-ATTR:host"] == host
    assert domain_exists(server) and len(memory_dirs(server)) == 1
    assert cloud.http.delete(f"/servers/{server}").status_code == 204
    cloud.wait_for(lambda: cloud.server(server) is None, "server deleted", 120)
    assert not domain_exists(server) and memory_dirs(server) == []
    assert cloud.placement().get_allocations(server)[1] == {}


def test_an_agent_refuses_a_credential_file_others_can_read(cloud: Cloud) -> None:
    host = "loose-host"
    secret_file = cloud.base / f"{host}.credential"
    secret_file.write_text("whatever")
    secret_file.chmod(0o644)
    conf = cloud.agent_conf(host, 1024, credential_file=secret_file)
    result = subprocess.run(
        [sys.executable, "-m", "filemem.cmd.compute", "--config-file", str(conf)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert "[DEFAULT] api_credential_file" in result.stderr and "mode 0644" in result.stderr


def test_a_cloned_host_with_the_same_compute_node_uuid_is_refused(cloud: Cloud) -> None:
    """A host cloned from another (same state_path/compute_node_uuid): its agent's first
    registration is refused naming the owner and the file, and it never touches the
    owner's provider in Placement."""
    cloud.start_agent("clone-src", 1024)
    provider = (cloud.base / "clone-src" / PROVIDER_UUID_FILE).read_text().strip()
    placement = cloud.placement()
    named = placement.get_resource_provider(provider)
    before = (placement.get_inventories(provider)[1], named.name if named else None)
    conf = cloud.agent_conf("clone-copy", 4096)
    (cloud.base / "clone-copy" / PROVIDER_UUID_FILE).write_text(provider + "\n")
    result = subprocess.run(
        [sys.executable, "-m", "filemem.cmd.compute", "--config-file", str(conf)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stderr
    assert f"Resource provider {provider} belongs to host clone-src" in result.stderr
    assert "compute_node_uuid" in result.stderr, result.stderr
    named = placement.get_resource_provider(provider)
    assert (placement.get_inventories(provider)[1], named.name if named else None) == before
    assert cloud.hypervisor("clone-copy") is None
