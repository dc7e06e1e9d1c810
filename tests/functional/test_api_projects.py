"""Projects, policy and quotas over real HTTP with real Placement: two projects' members and an
admin (a test authenticator: token -> Caller) against filemem-api served by uvicorn in this
process, and the openstack CLI for --all-projects and flavor access."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from filemem import conf as filemem_conf
from filemem.api.app import create_app
from filemem.cmd.api import build_context, listening_socket, url_of
from filemem.db import migrate
from tests.functional.api_fixtures import (
    TOKEN,
    ApiEnv,
    agent_spawned,
    http_client,
    make_flavor,
    make_image,
    placement_client,
    register_host,
)
from tests.functional.placement_fixtures import REPO, StandalonePlacement
from tests.unit.tenants_app import PROJECT_A, PROJECT_B, authenticator

OPENSTACK = REPO / ".venv" / "bin" / "openstack"
HOST = "projects-host"


@dataclasses.dataclass
class Served:
    env: ApiEnv
    policy_file: Path
    clients: dict[str, httpx.Client]

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.clients[who].request(method, f"/v2.1{path}", **kwargs)


def _serve(app: Any, state: Path) -> Iterator[str]:
    sock = listening_socket("127.0.0.1", 0)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            threading.Event().wait(0.05)
        assert server.started, "uvicorn did not start"
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    state = tmp_path_factory.mktemp("api-projects")
    policy_file = state / "policy.yaml"
    policy_file.write_text("{}\n")
    with StandalonePlacement(state / "placement") as placement_url:
        conf_file = state / "filemem.conf"
        conf_file.write_text(
            f"[DEFAULT]\nstate_path = {state}\nallow_resize_to_same_host = true\n"
            f"[api]\nadmin_token = {TOKEN}\nimage_dirs = {state / 'files'}\n"
            f"[placement]\nendpoint = {placement_url}\ntoken = admin\n"
            f"[oslo_policy]\npolicy_file = {policy_file}\n"
        )
        conf = filemem_conf.load(config_files=[str(conf_file)])
        url = f"sqlite:///{state / 'api.sqlite'}"
        migrate.upgrade(url)
        ctx = dataclasses.replace(build_context(conf, url), authenticators=(authenticator,))
        for api_url in _serve(create_app(ctx), state):
            tokens = {"admin": TOKEN} | {
                who: f"token-{who}" for who in ("member_a", "member_b", "reader_a")
            }
            clients = {who: http_client(api_url, token) for who, token in tokens.items()}
            files = state / "files"
            files.mkdir()
            env = ApiEnv(
                api_url, placement_url, clients["admin"], placement_client(placement_url), files
            )
            register_host(env, HOST, memory_mb=64 * 1024, vcpus=64)
            yield Served(env, policy_file, clients)
            for client in clients.values():
                client.close()
        ctx.scheduler.close()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def image(served: Served) -> str:
    return make_image(served.env, "projects-image")


def _boot(
    served: Served, who: str, flavor: str, image: str, name: str, **extra: Any
) -> httpx.Response:
    body = {"server": {"name": name, "flavorRef": flavor, "imageRef": image, **extra}}
    return served.call(who, "POST", "/servers", json=body)


def test_a_member_never_sees_or_changes_another_projects_server(served: Served, image: str) -> None:
    flavor = make_flavor(served.env, "proj.small", ram=256, vcpus=1)
    created = _boot(served, "member_a", flavor, image, "a-vm")
    assert created.status_code == 202, created.text
    server_id = created.json()["server"]["id"]
    agent_spawned(served.env, server_id)
    shown = served.call("member_a", "GET", f"/servers/{server_id}").json()["server"]
    assert (shown["tenant_id"], shown["user_id"], shown["status"]) == (
        PROJECT_A,
        "user-a",
        "ACTIVE",
    )
    consumer = served.env.placement.request("GET", f"/allocations/{server_id}").body or {}
    assert (consumer["project_id"], consumer["user_id"]) == (PROJECT_A, "user-a")

    listed = served.call("member_b", "GET", "/servers/detail").json()["servers"]
    assert server_id not in [s["id"] for s in listed]
    for method, suffix, body in [
        ("GET", "", None),
        ("PUT", "", {"server": {"name": "mine-now"}}),
        ("POST", "/action", {"os-stop": None}),
        ("GET", "/metadata", None),
        ("PUT", "/metadata/k", {"meta": {"k": "v"}}),
        ("DELETE", "", None),
    ]:
        response = served.call("member_b", method, f"/servers/{server_id}{suffix}", json=body)
        assert response.status_code == 404, (method, suffix, response.text)
        assert (
            response.json()["itemNotFound"]["message"]
            == f"Instance {server_id} could not be found."
        )
    still = served.call("member_a", "GET", f"/servers/{server_id}").json()["server"]
    assert (still["name"], still["status"], still["metadata"]) == ("a-vm", "ACTIVE", {})


def test_members_get_novas_403_for_usage_of_others_and_admin_routes(
    served: Served, image: str
) -> None:
    flavor = make_flavor(served.env, "proj.usage", ram=128, vcpus=1)
    server_id = _boot(served, "member_a", flavor, image, "a-usage").json()["server"]["id"]
    for who, path, rule in [
        ("member_b", f"/limits?tenant_id={PROJECT_A}", "os_compute_api:limits:other_project"),
        (
            "member_b",
            f"/os-simple-tenant-usage/{PROJECT_A}",
            "os_compute_api:os-simple-tenant-usage:show",
        ),
        ("member_a", "/os-hypervisors", "os_compute_api:os-hypervisors:list"),
        ("member_a", "/os-services", "os_compute_api:os-services:list"),
        ("member_a", "/os-aggregates", "os_compute_api:os-aggregates:index"),
        ("member_a", "/os-migrations", "os_compute_api:os-migrations:index"),
        ("member_a", f"/servers/{server_id}/migrations", "os_compute_api:servers:migrations:index"),
    ]:
        response = served.call(who, "GET", path, headers={"OpenStack-API-Version": "compute 2.23"})
        assert response.status_code == 403, (path, response.text)
        assert response.json() == {
            "forbidden": {"message": f"Policy doesn't allow {rule} to be performed.", "code": 403}
        }
    actions: list[tuple[str, dict[str, Any]]] = [
        ("member_a", {"os-resetState": {"state": "error"}}),
        (
            "member_a",
            {"os-migrateLive": {"host": None, "block_migration": False, "disk_over_commit": False}},
        ),
    ]
    for who, body in actions:
        response = served.call(who, "POST", f"/servers/{server_id}/action", json=body)
        assert response.status_code == 403, response.text
    quota = served.call(
        "member_a", "PUT", f"/os-quota-sets/{PROJECT_A}", json={"quota_set": {"instances": 99}}
    )
    assert quota.status_code == 403 and "os_compute_api:os-quota-sets:update" in quota.text


def test_a_policy_file_override_takes_effect(served: Served) -> None:
    """oslo.policy re-reads a changed policy file: members may list hypervisors, then not."""
    assert served.call("member_a", "GET", "/os-hypervisors").status_code == 403
    served.policy_file.write_text(
        '"os_compute_api:os-hypervisors:list": "rule:project_member_or_admin"\n'
    )
    stat = served.policy_file.stat()
    # The file's mtime is how oslo.policy notices the change; make sure it moved.
    os.utime(served.policy_file, (stat.st_atime, stat.st_mtime + 2))
    try:
        listed = served.call("member_a", "GET", "/os-hypervisors")
        assert listed.status_code == 200, listed.text
        assert HOST in [h["hypervisor_hostname"] for h in listed.json()["hypervisors"]]
        assert served.call("reader_a", "GET", "/os-hypervisors").status_code == 403
        assert served.call("member_a", "GET", "/os-hypervisors/detail").status_code == 403
    finally:
        served.policy_file.write_text("{}\n")
        os.utime(served.policy_file, (stat.st_atime, stat.st_mtime + 4))
    assert served.call("member_a", "GET", "/os-hypervisors").status_code == 403


def test_quotas_refuse_the_eleventh_instance_and_a_resize_over_cores(
    served: Served, image: str
) -> None:
    flavor = make_flavor(served.env, "proj.quota", ram=128, vcpus=2)
    wide = make_flavor(served.env, "proj.wide", ram=128, vcpus=8)
    used = served.call("member_b", "GET", "/limits").json()["limits"]["absolute"]
    assert (used["maxTotalInstances"], used["maxTotalCores"], used["totalInstancesUsed"]) == (
        10,
        20,
        0,
    )
    ten = _boot(served, "member_b", flavor, image, "b", min_count=9, max_count=9)
    assert ten.status_code == 202, ten.text
    eleventh = _boot(served, "member_b", flavor, image, "b-more", min_count=2, max_count=2)
    assert eleventh.status_code == 403
    assert eleventh.json()["forbidden"]["message"] == (
        "Quota exceeded for instances, cores: Requested 2, 4, but already used 9, 18 of 10, 20 "
        "instances, cores"
    )
    last = _boot(served, "member_b", flavor, image, "b-last")
    # 9 servers of 2 cores: the tenth would need 20 cores, exactly the quota.
    assert last.status_code == 202, last.text
    refused = _boot(served, "member_b", flavor, image, "b-11")
    assert refused.status_code == 403
    assert (
        "Quota exceeded for instances, cores: Requested 1, 2, but already used 10, 20 of 10, 20"
        in refused.text
    )
    usage = served.call("member_b", "GET", "/limits").json()["limits"]["absolute"]
    assert (usage["totalInstancesUsed"], usage["totalCoresUsed"]) == (10, 20)

    # An admin raises the quotas; a resize from 2 to 8 cores (20 + 6) goes over 25 cores.
    assert (
        served.call(
            "admin",
            "PUT",
            f"/os-quota-sets/{PROJECT_B}",
            json={"quota_set": {"instances": 20, "cores": 25}},
        ).status_code
        == 200
    )
    server_id = last.json()["server"]["id"]
    agent_spawned(served.env, server_id)
    resize = served.call(
        "member_b", "POST", f"/servers/{server_id}/action", json={"resize": {"flavorRef": wide}}
    )
    assert resize.status_code == 403
    assert resize.json()["forbidden"]["message"] == (
        "Quota exceeded for cores: Requested 6, but already used 20 of 25 cores"
    )
    detail = served.call("member_b", "GET", f"/os-quota-sets/{PROJECT_B}/detail").json()[
        "quota_set"
    ]
    assert detail["cores"] == {"limit": 25, "in_use": 20, "reserved": 0}


def _cli(served: Served, tmp_path: Path, who: str, *args: str) -> str:
    token = TOKEN if who == "admin" else f"token-{who}"
    clouds = tmp_path / f"clouds-{who}.yaml"
    url = served.env.url
    clouds.write_text(
        "clouds:\n  filemem:\n    auth_type: admin_token\n    auth:\n"
        f"      endpoint: {url}/v2.1\n      token: {token}\n"
        f"    identity_endpoint_override: {url}/identity/v3\n"
        f"    image_endpoint_override: {url}/image\n"
    )
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    environ.update(OS_CLIENT_CONFIG_FILE=str(clouds), OS_CLOUD="filemem")
    result = subprocess.run(
        [str(OPENSTACK), *args],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def test_openstack_cli_all_projects(served: Served, image: str, tmp_path: Path) -> None:
    flavor = make_flavor(served.env, "proj.cli", ram=128, vcpus=1)
    a = _boot(served, "member_a", flavor, image, "cli-a").json()["server"]["id"]
    b = _boot(served, "member_b", flavor, image, "cli-b").json()["server"]["id"]
    mine = _cli(served, tmp_path, "member_a", "server", "list", "-f", "value", "-c", "ID")
    assert a in mine.split()
    everyone = _cli(
        served,
        tmp_path,
        "admin",
        "server",
        "list",
        "--all-projects",
        "-f",
        "value",
        "-c",
        "ID",
        "-c",
        "Name",
    )
    assert a in everyone and b in everyone
    own = _cli(served, tmp_path, "admin", "server", "list", "-f", "value", "-c", "ID")
    assert a not in own.split()


def test_openstack_cli_flavor_access(served: Served, tmp_path: Path) -> None:
    private = _cli(
        served,
        tmp_path,
        "admin",
        "flavor",
        "create",
        "--private",
        "--ram",
        "128",
        "--vcpus",
        "1",
        "--disk",
        "0",
        "proj.private",
        "-f",
        "value",
        "-c",
        "id",
    ).strip()
    names = _cli(served, tmp_path, "member_a", "flavor", "list", "-f", "value", "-c", "Name")
    assert "proj.private" not in names.split()
    _cli(served, tmp_path, "admin", "flavor", "set", "--project", PROJECT_A, private)
    names = _cli(served, tmp_path, "member_a", "flavor", "list", "-f", "value", "-c", "Name")
    assert "proj.private" in names.split()
    access = served.call("admin", "GET", f"/flavors/{private}/os-flavor-access").json()
    assert access == {"flavor_access": [{"flavor_id": private, "tenant_id": PROJECT_A}]}
    assert (
        "proj.private"
        not in _cli(
            served, tmp_path, "member_b", "flavor", "list", "-f", "value", "-c", "Name"
        ).split()
    )
    _cli(served, tmp_path, "admin", "flavor", "unset", "--project", PROJECT_A, private)
    names = _cli(served, tmp_path, "member_a", "flavor", "list", "-f", "value", "-c", "Name")
    assert "proj.private" not in names.split()
