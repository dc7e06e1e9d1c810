"""Host credentials in-process: the authenticator (cache, revocation), the authorization rules
of every agent route, the admin-only credential routes, the agent's credential file."""

from __future__ import annotations

import os
import uuid as uuidlib
from pathlib import Path
from typing import Any

import pytest

from filemem.api import agent_authz
from filemem.api.host_auth import HostCredentialAuthenticator, host_caller
from filemem.api.identity import ADMIN, Caller
from filemem.cmd.agent_token import agent_token
from filemem.cmd.host_credential import write_secret
from filemem.db import api as db_api
from filemem.db import host_credentials
from filemem.db import server_migrations as migrations_db
from filemem.db.models import HostCredential
from filemem.exceptions import ConfigError, InvalidInput
from tests.unit.api_app import Api
from tests.unit.test_db_api import instance_values

KEYSTONE_MEMBER = Caller(user_id="u", project_id="p", roles=frozenset({"member"}), kind="keystone")


# -- pure policy --------------------------------------------------------------------------------


def test_a_host_credential_acts_for_its_own_host_only() -> None:
    a = host_caller("host-a")
    assert agent_authz.may_act_for_host(a, "host-a")
    assert not agent_authz.may_act_for_host(a, "host-b")
    assert agent_authz.may_act_for_host(ADMIN, "host-b")
    assert not agent_authz.may_act_for_host(KEYSTONE_MEMBER, "host-a")


def test_an_instance_belongs_to_its_host_and_to_both_ends_of_its_move() -> None:
    a = host_caller("host-a")
    assert agent_authz.may_act_for_instance(a, "host-a", [])
    assert not agent_authz.may_act_for_instance(a, "host-b", [])
    assert agent_authz.may_act_for_instance(a, "host-b", ["host-b", "host-a"])
    assert not agent_authz.may_act_for_instance(a, None, ["host-b", "host-c"])
    assert not agent_authz.may_act_for_instance(a, None, [])
    assert agent_authz.may_act_for_instance(ADMIN, None, [])
    assert "credential of host host-a" in agent_authz.refusal(a, "x")


# -- the authenticator --------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_authenticator_proves_the_host_and_forgets_a_revoked_credential(api: Api) -> None:
    database = api.ctx.database
    with database.session() as session:
        credential, secret = host_credentials.create(session, "host-a")
        credential_id = credential.id
    with database.reader() as session:
        stored = session.get(HostCredential, credential_id)
        assert (
            stored is not None and stored.secret_hash != secret and secret not in str(vars(stored))
        )
    clock = Clock()
    authenticate = HostCredentialAuthenticator(database, "proj", ttl=5.0, timer=clock)
    caller = authenticate(secret)
    assert caller == Caller(
        user_id="host:host-a",
        project_id="proj",
        roles=frozenset({"filemem-agent"}),
        is_admin=False,
        host="host-a",
        kind="host_credential",
    )
    assert authenticate(secret + "x") is None
    assert authenticate("") is None
    with database.reader() as session:
        used = session.get(HostCredential, credential_id)
        assert used is not None and used.last_used_at is not None
    with database.session() as session:
        revoked = host_credentials.get(session, "host-a", credential_id)
        assert revoked is not None
        host_credentials.revoke(session, revoked)
    # Cached: still valid until the TTL passes, then refused.
    assert authenticate(secret) == caller
    clock.now += 5.1
    assert authenticate(secret) is None


# -- the routes ---------------------------------------------------------------------------------


def issue(api: Api, host: str) -> tuple[int, str]:
    response = api.call("POST", f"/filemem/v1/hosts/{host}/credentials")
    assert response.status_code == 201, response.text
    body = response.json()["credential"]
    assert body["host"] == host and body["revoked_at"] is None
    return int(body["id"]), str(body["secret"])


def as_host(secret: str) -> dict[str, str]:
    return {"X-Auth-Token": secret}


def add_instance(api: Api, host: str | None, **extra: Any) -> str:
    values = instance_values(host, **extra)
    with api.ctx.database.session() as session:
        db_api.create_instance(session, values)
    return str(values["uuid"])


def add_migration(api: Api, instance: str, source: str, dest: str, status: str) -> None:
    with api.ctx.database.session() as session:
        migrations_db.create_migration(
            session,
            {
                "uuid": str(uuidlib.uuid4()),
                "instance_uuid": instance,
                "migration_type": "resize",
                "status": status,
                "source_compute": source,
                "dest_compute": dest,
                "project_id": "p",
                "user_id": "u",
            },
        )


def test_credential_routes_are_the_admins_and_never_show_a_secret_twice(api: Api) -> None:
    first, secret = issue(api, "host-a")
    second, _ = issue(api, "host-a")
    listed = api.call("GET", "/filemem/v1/hosts/host-a/credentials").json()["credentials"]
    assert [c["id"] for c in listed] == [first, second]
    assert all("secret" not in c for c in listed)
    assert api.call("GET", "/filemem/v1/hosts/host-b/credentials").json() == {"credentials": []}
    for method, path in (
        ("POST", "/filemem/v1/hosts/host-a/credentials"),
        ("GET", "/filemem/v1/hosts/host-a/credentials"),
        ("DELETE", f"/filemem/v1/hosts/host-a/credentials/{second}"),
    ):
        refused = api.call(method, path, headers=as_host(secret))
        assert refused.status_code == 403, (method, path, refused.text)
        assert "credential of host host-a" in refused.json()["forbidden"]["message"]
    missing = api.call("DELETE", f"/filemem/v1/hosts/host-b/credentials/{first}")
    assert missing.status_code == 404, "a credential is revoked through its own host only"
    assert api.call("DELETE", f"/filemem/v1/hosts/host-a/credentials/{first}").status_code == 204
    listed = api.call("GET", "/filemem/v1/hosts/host-a/credentials").json()["credentials"]
    assert listed[0]["revoked_at"] is not None and listed[1]["revoked_at"] is None


def test_every_non_agent_route_is_closed_to_a_host_credential(api: Api) -> None:
    _, secret = issue(api, "host-a")
    for method, path in (
        ("GET", "/v2.1/servers"),
        ("GET", "/v2.1/flavors"),
        ("GET", "/v2.1/os-hypervisors"),
        ("GET", "/image/v2/images"),
        ("GET", "/placement/resource_providers"),
    ):
        response = api.call(method, path, headers=as_host(secret))
        assert response.status_code == 403, (path, response.text)
    # The public version documents stay public.
    assert api.call("GET", "/", headers=as_host(secret)).status_code in (200, 300)


def test_host_routes_need_the_path_host(api: Api) -> None:
    _, secret = issue(api, "host-a")
    api.register_host("host-b")
    body = {"binary": "filemem-compute", "provider_uuid": str(uuidlib.uuid4())}
    own = api.call("PUT", "/filemem/v1/services/host-a", json=body, headers=as_host(secret))
    assert own.status_code == 200, own.text
    other = api.call("PUT", "/filemem/v1/services/host-b", json=body, headers=as_host(secret))
    assert other.status_code == 403, other.text
    watch = "/filemem/v1/hosts/{}/instances"
    assert api.call("GET", watch.format("host-a"), headers=as_host(secret)).status_code == 200
    assert api.call("GET", watch.format("host-b"), headers=as_host(secret)).status_code == 403
    usage: dict[str, Any] = {"guests": {}}
    path = "/filemem/v1/hosts/host-b/memory-usage"
    assert api.call("PUT", path, json=usage, headers=as_host(secret)).status_code == 403


def test_instance_routes_need_the_instance_host_or_an_end_of_its_move(api: Api) -> None:
    _, secret = issue(api, "host-a")
    mine, theirs = add_instance(api, "host-a"), add_instance(api, "host-b")
    moving_in = add_instance(api, "host-b")
    add_migration(api, moving_in, "host-b", "host-a", migrations_db.IN_PROGRESS[0])
    moved_before = add_instance(api, "host-b")
    add_migration(api, moved_before, "host-a", "host-b", "confirmed")
    report = {"vm_state": "active", "power_state": 1}

    def patch(uuid: str) -> int:
        path = f"/filemem/v1/instances/{uuid}"
        return api.call("PATCH", path, json=report, headers=as_host(secret)).status_code

    assert patch(mine) == 200
    assert patch(moving_in) == 200, "the destination of a move in progress reports too"
    assert patch(theirs) == 403
    assert patch(moved_before) == 403, "a finished move gives no rights"
    assert patch(str(uuidlib.uuid4())) == 404
    console = {"output": "x", "requested_at": "2026-12-03T00:00:00"}
    event = {
        "event": "compute_stop_instance",
        "result": "Success",
        "start_time": "2026-12-03T00:00:00",
        "finish_time": "2026-12-03T00:00:01",
    }
    for method, suffix, json in (
        ("POST", "gone", None),
        ("PUT", "console", console),
        ("POST", "events", event),
    ):
        path = f"/filemem/v1/instances/{theirs}/{suffix}"
        response = api.call(method, path, json=json, headers=as_host(secret))
        assert response.status_code == 403, (suffix, response.text)
    # The admin token may still do everything.
    assert api.call("PATCH", f"/filemem/v1/instances/{theirs}", json=report).status_code == 200


def test_a_revoked_or_wrong_credential_is_unauthenticated(api: Api) -> None:
    credential_id, secret = issue(api, "host-a")
    path = "/filemem/v1/hosts/host-a/instances"
    # Revoked before its first use, so no cache holds it (the cache's TTL is tested above).
    api.call("DELETE", f"/filemem/v1/hosts/host-a/credentials/{credential_id}")
    for token in (secret, "not-a-credential"):
        response = api.call("GET", path, headers=as_host(token))
        assert response.status_code == 401, response.text
        assert response.json()["unauthorized"]["code"] == 401


# -- the agent's side ---------------------------------------------------------------------------


def test_the_agent_needs_exactly_one_of_token_and_credential_file(tmp_path: Path) -> None:
    secret_file = tmp_path / "credential"
    write_secret(secret_file, "s3cret")
    assert secret_file.stat().st_mode & 0o777 == 0o600
    assert agent_token("", str(secret_file)) == "s3cret"
    assert agent_token("admin", "") == "admin"
    with pytest.raises(ConfigError, match=r"api_credential_file.*api_token"):
        agent_token("", "")
    with pytest.raises(ConfigError, match="not both"):
        agent_token("admin", str(secret_file))
    with pytest.raises(ConfigError, match="cannot read"):
        agent_token("", str(tmp_path / "missing"))
    os.chmod(secret_file, 0o640)
    with pytest.raises(ConfigError, match=r"api_credential_file: .* mode 0640"):
        agent_token("", str(secret_file))


def test_a_secret_file_is_not_overwritten_without_force(tmp_path: Path) -> None:
    path = tmp_path / "credential"
    write_secret(path, "one")
    with pytest.raises(InvalidInput, match="--force"):
        write_secret(path, "two")
    assert path.read_text() == "one\n"
    write_secret(path, "two", overwrite=True)
    assert path.read_text() == "two\n" and path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["credential"]
