"""Projects: servers belong to their creator's project and user; another project's server is
a 404 everywhere; all_tenants and the project filters as nova; key pairs belong to users."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit import tenants_app
from tests.unit.tenants_app import PROJECT_A, PROJECT_B, Tenants

tenants = tenants_app.tenants


def _not_found(response_status: int, text: str, server_id: str) -> None:
    assert response_status == 404, text
    assert f"Instance {server_id} could not be found." in text


def test_a_server_carries_its_creators_project_and_user(tenants: Tenants) -> None:
    server_id = tenants.boot("member_a", "mine")
    server = tenants.call("member_a", "GET", f"/servers/{server_id}").json()["server"]
    assert (server["tenant_id"], server["user_id"]) == (PROJECT_A, "user-a")
    # The Placement consumer is the caller's project and user (Placement 1.12+ shows them).
    consumer = tenants.placement.request("GET", f"/allocations/{server_id}").body
    assert consumer is not None and consumer["allocations"], consumer
    assert (consumer["project_id"], consumer["user_id"]) == (PROJECT_A, "user-a")
    actions = tenants.call("member_a", "GET", f"/servers/{server_id}/os-instance-actions")
    (create,) = actions.json()["instanceActions"]
    assert (create["project_id"], create["user_id"]) == (PROJECT_A, "user-a")


SERVER_CALLS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "", None),
    ("PUT", "", {"server": {"name": "stolen"}}),
    ("DELETE", "", None),
    ("GET", "/metadata", None),
    ("POST", "/metadata", {"metadata": {"a": "b"}}),
    ("PUT", "/metadata", {"metadata": {"a": "b"}}),
    ("GET", "/metadata/a", None),
    ("PUT", "/metadata/a", {"meta": {"a": "b"}}),
    ("DELETE", "/metadata/a", None),
    ("GET", "/tags", None),
    ("PUT", "/tags", {"tags": ["x"]}),
    ("DELETE", "/tags", None),
    ("GET", "/tags/x", None),
    ("PUT", "/tags/x", None),
    ("DELETE", "/tags/x", None),
    ("GET", "/os-instance-actions", None),
    ("GET", "/os-instance-actions/req-none", None),
    ("POST", "/action", {"os-stop": None}),
    ("POST", "/action", {"os-start": None}),
    ("POST", "/action", {"reboot": {"type": "HARD"}}),
    ("POST", "/action", {"pause": None}),
    ("POST", "/action", {"suspend": None}),
    ("POST", "/action", {"lock": None}),
    ("POST", "/action", {"unlock": None}),
    ("POST", "/action", {"os-getConsoleOutput": {}}),
    ("POST", "/action", {"trigger_crash_dump": None}),
    ("POST", "/action", {"resize": {"flavorRef": "1"}}),
    ("POST", "/action", {"confirmResize": None}),
    ("POST", "/action", {"rebuild": {"imageRef": "x"}}),
]


def test_another_projects_server_is_a_404_in_every_route(tenants: Tenants) -> None:
    server_id = tenants.boot("member_a", "private")
    for method, suffix, body in SERVER_CALLS:
        response = tenants.call(
            "member_b", method, f"/servers/{server_id}{suffix}", "2.26", json=body
        )
        _not_found(response.status_code, f"{method} {suffix} {response.text}", server_id)
    # Still there, untouched, for its own project.
    server = tenants.call("member_a2", "GET", f"/servers/{server_id}").json()["server"]
    assert server["name"] == "private" and server["metadata"] == {}


def test_lists_show_only_the_callers_project(tenants: Tenants) -> None:
    a = tenants.boot("member_a", "a")
    b = tenants.boot("member_b", "b")
    admins = tenants.boot("admin", "admins")
    for detail in ("", "/detail"):

        def listed(who: str, query: str = "", detail: str = detail) -> set[str]:
            servers = tenants.call(who, "GET", f"/servers{detail}{query}").json()["servers"]
            return {s["id"] for s in servers}

        assert listed("member_a") == {a} and listed("reader_a") == {a}
        assert listed("member_b") == {b}
        # An admin too lists its own project's servers unless it asks for all of them.
        assert listed("admin") == {admins}
        assert listed("admin", "?all_tenants=1") == {a, b, admins}
        assert listed("admin", "?all_tenants") == {a, b, admins}
        assert listed("admin", f"?all_tenants=true&project_id={PROJECT_B}") == {b}
        assert listed("admin", f"?all_tenants=1&tenant_id={PROJECT_A}") == {a}
        # Without all_tenants, tenant_id is ignored (nova's lp:#1185290), for admins too.
        assert listed("admin", f"?tenant_id={PROJECT_A}") == {admins}
        # A member's admin-only filters are dropped silently (nova's remove_invalid_options).
        assert listed("member_a", f"?project_id={PROJECT_B}") == {a}
        assert listed("member_a", f"?host={tenants.host}") == {a}
        refused = tenants.call("member_a", "GET", f"/servers{detail}?all_tenants=1")
        rule = "detail:get_all_tenants" if detail else "index:get_all_tenants"
        assert refused.status_code == 403
        assert refused.json()["forbidden"]["message"] == (
            f"Policy doesn't allow os_compute_api:servers:{rule} to be performed."
        )
        bad = tenants.call("admin", "GET", f"/servers{detail}?all_tenants=maybe")
        assert bad.status_code == 400 and "all_tenants" in bad.text


def test_admins_find_any_server_by_id_and_see_admin_fields(tenants: Tenants) -> None:
    server_id = tenants.boot("member_a", "a")
    as_admin = tenants.call("admin", "GET", f"/servers/{server_id}", "2.16").json()["server"]
    assert as_admin["OS-EXT-SRV-ATTR:host"] == tenants.host and "host_status" in as_admin
    as_member = tenants.call("member_a", "GET", f"/servers/{server_id}", "2.16").json()["server"]
    assert not [key for key in as_member if key.startswith("OS-EXT-SRV-ATTR")]
    assert "host_status" not in as_member
    assert as_member["OS-EXT-STS:vm_state"] == as_admin["OS-EXT-STS:vm_state"]


@pytest.mark.parametrize(
    ("who", "action", "rule"),
    [
        ("reader_a", {"os-stop": None}, "os_compute_api:servers:stop"),
        ("reader_a", {"lock": None}, "os_compute_api:os-lock-server:lock"),
        (
            "member_a",
            {"os-resetState": {"state": "active"}},
            "os_compute_api:os-admin-actions:reset_state",
        ),
        (
            "member_a",
            {"os-migrateLive": {"host": None, "block_migration": "auto"}},
            "os_compute_api:os-migrate-server:migrate_live",
        ),
        (
            "manager_a",
            {"os-migrateLive": {"host": "h", "block_migration": "auto"}},
            "os_compute_api:os-migrate-server:migrate_live:host",
        ),
    ],
)
def test_actions_the_policy_refuses_are_403(
    tenants: Tenants, who: str, action: dict[str, object], rule: str
) -> None:
    server_id = tenants.boot("member_a", "a")
    response = tenants.call(who, "POST", f"/servers/{server_id}/action", "2.30", json=action)
    assert response.status_code == 403, response.text
    assert (
        response.json()["forbidden"]["message"] == f"Policy doesn't allow {rule} to be performed."
    )


def test_a_lock_by_an_admin_needs_the_override_to_lift(tenants: Tenants) -> None:
    server_id = tenants.boot("member_a", "a")
    assert (
        tenants.call(
            "admin", "POST", f"/servers/{server_id}/action", json={"lock": None}
        ).status_code
        == 202
    )
    shown = tenants.call("member_a", "GET", f"/servers/{server_id}", "2.9").json()["server"]
    assert shown["locked"] is True
    refused = tenants.call(
        "member_a", "POST", f"/servers/{server_id}/action", json={"unlock": None}
    )
    assert refused.status_code == 403
    assert "os_compute_api:os-lock-server:unlock:unlock_override" in refused.text
    assert (
        tenants.call(
            "admin", "POST", f"/servers/{server_id}/action", json={"unlock": None}
        ).status_code
        == 202
    )
    # The owner's own lock is the owner's to lift.
    assert (
        tenants.call(
            "member_a", "POST", f"/servers/{server_id}/action", json={"lock": None}
        ).status_code
        == 202
    )
    assert (
        tenants.call(
            "member_a2", "POST", f"/servers/{server_id}/action", json={"unlock": None}
        ).status_code
        == 202
    )


def test_keypairs_belong_to_their_user(tenants: Tenants) -> None:
    created = tenants.call(
        "member_a", "POST", "/os-keypairs", "2.10", json={"keypair": {"name": "k"}}
    )
    assert created.status_code == 201, created.text
    assert created.json()["keypair"]["user_id"] == "user-a"

    def names(who: str, query: str = "") -> list[str]:
        pairs = tenants.call(who, "GET", f"/os-keypairs{query}", "2.10").json()["keypairs"]
        return [k["keypair"]["name"] for k in pairs]

    assert names("member_a") == ["k"] and names("member_a2") == [] and names("member_b") == []
    assert names("admin", "?user_id=user-a") == ["k"]
    refused = tenants.call("member_b", "GET", "/os-keypairs?user_id=user-a", "2.10")
    assert refused.status_code == 403 and "os_compute_api:os-keypairs:index" in refused.text
    # Another user cannot boot with it; its user can.
    body = {
        "server": {
            "name": "k",
            "flavorRef": tenants.flavor,
            "imageRef": tenants.image,
            "key_name": "k",
        }
    }
    stolen = tenants.call("member_a2", "POST", "/servers", json=body)
    assert stolen.status_code == 400 and "Invalid key_name provided." in stolen.text
    assert tenants.call("member_a", "POST", "/servers", json=body).status_code == 202


def test_usage_of_another_project_is_refused(tenants: Tenants) -> None:
    tenants.boot("member_a", "a")
    own = tenants.call("member_a", "GET", f"/os-simple-tenant-usage/{PROJECT_A}")
    assert own.status_code == 200 and own.json()["tenant_usage"]["tenant_id"] == PROJECT_A
    other = tenants.call("member_b", "GET", f"/os-simple-tenant-usage/{PROJECT_A}")
    assert other.status_code == 403
    assert "os_compute_api:os-simple-tenant-usage:show" in other.text
    everyone = tenants.call("admin", "GET", "/os-simple-tenant-usage").json()["tenant_usages"]
    assert PROJECT_A in {u["tenant_id"] for u in everyone}
