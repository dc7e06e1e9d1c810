"""filemem-api behind a real Keystone: password-auth clients, token validation, the caller."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openstack
import pytest

from tests.functional.api_fixtures import agent_spawned, make_flavor, make_image, register_host
from tests.functional.keystone_api import (
    FILEMEM,
    KeystoneApiEnv,
    client_environ,
    keystone_api_env,
    openstack_cli,
    openstack_cli_refused,
)
from tests.functional.keystone_fixture import KeystoneServer

HOST = "keystone-host"
# Keystone set-up (keystone-manage, gunicorn, users) takes ~17 s here at load 9 on 2 cores;
# the budget only catches a set-up gone wrong on a busy machine.
KEYSTONE_START_BUDGET_S = 120.0


@pytest.fixture(scope="session")
def keystone(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeystoneServer]:
    server = KeystoneServer(tmp_path_factory.mktemp("keystone"))
    try:
        began = time.monotonic()
        server.start()
        populating = time.monotonic()
        server.populate()
        server.timings["populate"] = time.monotonic() - populating
        took = time.monotonic() - began
        steps = ", ".join(f"{step} {secs:.1f} s" for step, secs in server.timings.items())
        print(f"\nkeystone ready in {took:.1f} s ({steps})")
        assert took < KEYSTONE_START_BUDGET_S, f"Keystone took {took:.1f} s to set up"
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def env(keystone: KeystoneServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with keystone_api_env(tmp_path_factory.mktemp("api-keystone"), keystone) as running:
        # The operator (a Keystone admin) registers the host, a flavor and an image.
        # Room for every server the module's tests boot (one vCPU each, never deleted).
        register_host(running.admin, HOST, memory_mb=8192, vcpus=32)
        make_flavor(running.admin, "ks.small", ram=256)
        make_image(running.admin, "ks-img")
        yield running


def as_json(text: str) -> Any:
    return json.loads(text)


def _challenge(response: httpx.Response, keystone: KeystoneServer) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == f'Keystone uri="{keystone.auth_url}"'
    assert response.json()["unauthorized"]["code"] == 401


@pytest.mark.parametrize("user", ["alpha-member", "beta-member", "admin"])
def test_openstack_cli_with_password_auth(env: KeystoneApiEnv, user: str) -> None:
    """Each user logs in with clouds.yaml password auth; the catalog leads to filemem."""
    flavors = openstack_cli(env, user, "flavor", "list", "-f", "value", "-c", "Name")
    assert "ks.small" in flavors.split()
    name = f"{user}-vm"
    server_id = openstack_cli(
        env, user, "server", "create", "--no-network", "--image", "ks-img", "--flavor",
        "ks.small", name, "-f", "value", "-c", "id",
    ).strip()  # fmt: skip
    agent_spawned(env.admin, server_id)
    listed = openstack_cli(env, user, "server", "list", "-f", "value", "-c", "ID", "-c", "Name")
    assert f"{server_id} {name}" in listed.splitlines()
    shown = as_json(openstack_cli(env, user, "server", "show", server_id, "-f", "json"))
    who = env.keystone.users[user]
    assert (shown["project_id"], shown["user_id"]) == (who.project_id, who.user_id)
    assert shown["status"] == "ACTIVE"


def test_openstacksdk_with_password_auth(
    env: KeystoneApiEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(env.clouds))
    conn = openstack.connect(cloud="beta-member")
    try:
        flavor = conn.compute.find_flavor("ks.small", ignore_missing=False)
        image = conn.image.find_image("ks-img", ignore_missing=False)
        server = conn.compute.create_server(
            name="sdk-vm", flavor_id=flavor.id, image_id=image.id, networks="none"
        )
        agent_spawned(env.admin, server.id)
        shown = conn.compute.get_server(server.id)
        beta = env.keystone.users["beta-member"]
        assert (shown.project_id, shown.user_id) == (beta.project_id, beta.user_id)
        assert shown.status == "ACTIVE"
        assert server.id in {s.id for s in conn.compute.servers()}
    finally:
        conn.close()


def test_the_caller_is_the_keystone_identity(env: KeystoneApiEnv) -> None:
    """tenant_id/user_id of a created server are the token's; the admin role makes an admin
    (who may act on a locked server, where a member may not)."""
    alpha = env.keystone.users["alpha-member"]
    with env.client("alpha-member") as member, env.client("alpha-admin") as admin:
        owned = _create(member, "owned")
        body = _show(member, owned)
        assert (body["tenant_id"], body["user_id"]) == (alpha.project_id, alpha.user_id)
        allocation = httpx.get(
            f"{env.admin.placement_url}/allocations/{owned}",
            headers={"X-Auth-Token": "admin", "OpenStack-API-Version": "placement 1.28"},
            timeout=30,
        ).json()
        assert (allocation["project_id"], allocation["user_id"]) == (
            alpha.project_id,
            alpha.user_id,
        )
        by_admin = _show(admin, _create(admin, "by-admin"))
        assert by_admin["user_id"] == env.keystone.users["alpha-admin"].user_id
        agent_spawned(env.admin, owned)
        response = member.post(f"/v2.1/servers/{owned}/action", json={"lock": None})
        assert response.status_code == 202, response.text
        response = member.post(f"/v2.1/servers/{owned}/action", json={"os-stop": None})
        assert response.status_code == 409, "a member may not stop a locked server"
        response = admin.post(f"/v2.1/servers/{owned}/action", json={"os-stop": None})
        assert response.status_code == 202, "the admin role may"


def _create(client: httpx.Client, name: str) -> str:
    flavor = client.get("/v2.1/flavors").json()["flavors"]
    image = client.get("/v2.1/images").json()["images"]
    ref = {
        "name": name,
        "flavorRef": next(f["id"] for f in flavor if f["name"] == "ks.small"),
        "imageRef": next(i["id"] for i in image if i["name"] == "ks-img"),
    }
    response = client.post("/v2.1/servers", json={"server": ref})
    assert response.status_code == 202, response.text
    server_id: str = response.json()["server"]["id"]
    assert _show(client, server_id)["status"] == "BUILD", "scheduled to the host"
    return server_id


def _show(client: httpx.Client, server_id: str, headers: dict[str, str] | None = None) -> Any:
    response = client.get(f"/v2.1/servers/{server_id}", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()["server"]


def test_a_member_token_works_and_no_or_garbage_token_is_refused(env: KeystoneApiEnv) -> None:
    with env.client("alpha-member") as member:
        assert member.get("/v2.1/servers").status_code == 200
    _challenge(httpx.get(f"{env.url}/v2.1/servers", timeout=30), env.keystone)
    garbage = {"X-Auth-Token": "gAAAAAB-not-a-fernet-token"}
    _challenge(httpx.get(f"{env.url}/v2.1/servers", headers=garbage, timeout=30), env.keystone)
    # The version documents stay public.
    assert httpx.get(f"{env.url}/v2.1", timeout=30).status_code == 200


def test_a_revoked_token_is_refused(env: KeystoneApiEnv) -> None:
    token = env.keystone.token("beta-member")
    headers = {"X-Auth-Token": token}
    assert httpx.get(f"{env.url}/v2.1/flavors", headers=headers, timeout=30).status_code == 200
    env.keystone.revoke(token)
    _challenge(httpx.get(f"{env.url}/v2.1/flavors", headers=headers, timeout=30), env.keystone)


def test_an_expired_token_is_refused(env: KeystoneApiEnv) -> None:
    """A token from a keystone whose tokens last a few seconds, validated by the main one."""
    lifetime = 5
    with env.keystone.short_lived(lifetime) as issuer:
        token = issuer.token("alpha-member")
        issued = time.monotonic()
    headers = {"X-Auth-Token": token}
    response = httpx.get(f"{env.url}/v2.1/flavors", headers=headers, timeout=30)
    assert response.status_code == 200, "a fresh token works"
    time.sleep(max(0.0, issued + lifetime + 1 - time.monotonic()))
    _challenge(httpx.get(f"{env.url}/v2.1/flavors", headers=headers, timeout=30), env.keystone)


def test_no_stand_in_identity_behind_keystone(env: KeystoneApiEnv) -> None:
    """The admin-token set-up's identity v3 documents would shadow the real Keystone."""
    assert httpx.get(f"{env.url}/identity", timeout=30).status_code == 404
    with env.client("alpha-member") as member:
        assert member.get("/identity/v3/projects").status_code == 404


def test_the_filemem_cli_with_os_password_auth(env: KeystoneApiEnv) -> None:
    """`filemem server list` / `flavor list` with clouds.yaml (OS_CLOUD) and with plain OS_*
    variables: a keystoneauth1 session, endpoints from the catalog."""
    with env.client("alpha-member") as member:
        server_id = _create(member, "cli-listed")
    by_cloud = client_environ(env.clouds, "alpha-member")
    alpha = env.keystone.users["alpha-member"]
    by_vars = {k: v for k, v in by_cloud.items() if k not in ("OS_CLIENT_CONFIG_FILE", "OS_CLOUD")}
    by_vars.update(
        OS_AUTH_URL=env.keystone.auth_url,
        OS_USERNAME=alpha.name,
        OS_PASSWORD=alpha.password,
        OS_PROJECT_NAME=alpha.project,
        OS_USER_DOMAIN_NAME="Default",
        OS_PROJECT_DOMAIN_NAME="Default",
    )
    for environ in (by_cloud, by_vars):
        listed = _filemem(environ, "server", "list", "--json")
        assert server_id in {s["id"] for s in json.loads(listed)}, listed
        assert "ks.small" in _filemem(environ, "flavor", "list")
    bad = {**by_vars, "OS_PASSWORD": "wrong"}
    failed = subprocess.run(
        [str(FILEMEM), "server", "list"], env=bad, capture_output=True, text=True, timeout=120
    )
    assert failed.returncode == 1 and "Keystone login failed" in failed.stderr, failed.stderr


def _filemem(environ: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [str(FILEMEM), *args], env=environ, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result.stdout


def test_with_keystone_tokens_a_member_never_reaches_another_projects_servers_or_flavors(
    env: KeystoneApiEnv,
) -> None:
    """beta's member, with their real Keystone token (CLI and raw HTTP), finds alpha's server
    nowhere, does not see alpha's private flavor nor change its access, and reads no usage but
    beta's own."""
    alpha = env.keystone.users["alpha-member"]
    with env.client("alpha-member") as member_a, env.client("beta-member") as member_b:
        owned = _create(member_a, "alpha-owned")
        agent_spawned(env.admin, owned)
        refused = openstack_cli_refused(env, "beta-member", "server", "show", owned)
        assert f"No Server found for {owned}" in refused
        refused = openstack_cli_refused(env, "beta-member", "server", "delete", owned)
        assert f"No Server found for {owned}" in refused
        for method, suffix, body in [
            ("GET", "", None),
            ("PUT", "", {"server": {"name": "beta-now"}}),
            ("POST", "/action", {"os-stop": None}),
            ("PUT", "/metadata/k", {"meta": {"k": "v"}}),
            ("DELETE", "", None),
        ]:
            response = member_b.request(method, f"/v2.1/servers/{owned}{suffix}", json=body)
            assert response.status_code == 404, (method, suffix, response.text)

        spec = {"name": "ks.alpha-only", "ram": 128, "vcpus": 1, "disk": 0}
        made = env.admin.compute(
            "POST", "/flavors", json={"flavor": {**spec, "os-flavor-access:is_public": False}}
        )
        assert made.status_code == 200, made.text
        private = made.json()["flavor"]["id"]
        grant = {"addTenantAccess": {"tenant": alpha.project_id}}
        granted = env.admin.compute("POST", f"/flavors/{private}/action", json=grant)
        assert granted.status_code == 200, granted.text
        names = openstack_cli(env, "beta-member", "flavor", "list", "-f", "value", "-c", "Name")
        assert "ks.alpha-only" not in names.split()
        names = openstack_cli(env, "alpha-member", "flavor", "list", "-f", "value", "-c", "Name")
        assert "ks.alpha-only" in names.split()
        assert member_b.get(f"/v2.1/flavors/{private}").status_code == 404
        beta = env.keystone.users["beta-member"]
        take = {"addTenantAccess": {"tenant": beta.project_id}}
        taken = member_b.post(f"/v2.1/flavors/{private}/action", json=take)
        assert taken.status_code == 403, taken.text
        refused = openstack_cli_refused(
            env, "beta-member", "flavor", "set", "--project", beta.project_id, private
        )
        assert "No Flavor found" in refused or "403" in refused

        refused = openstack_cli_refused(
            env, "beta-member", "usage", "show", "--project", alpha.project_id
        )
        assert "os_compute_api:os-simple-tenant-usage:show" in refused
        usage = member_b.get(f"/v2.1/os-simple-tenant-usage/{alpha.project_id}")
        assert usage.status_code == 403, usage.text
        limits = member_b.get(f"/v2.1/limits?tenant_id={alpha.project_id}")
        assert limits.status_code == 403, limits.text
        agent_spawned(env.admin, _create(member_b, "beta-owned"))
        own = as_json(openstack_cli(env, "beta-member", "usage", "show", "-f", "json"))
        assert own["Project"] == beta.project_id
        still = _show(member_a, owned)
        assert (still["name"], still["status"], still["metadata"]) == ("alpha-owned", "ACTIVE", {})
