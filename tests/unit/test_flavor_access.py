"""Private flavors and os-flavor-access in nova's routes, shapes and messages."""

from __future__ import annotations

from typing import Any

import httpx

from tests.unit import tenants_app
from tests.unit.tenants_app import PROJECT_A, PROJECT_B, Tenants

tenants = tenants_app.tenants


def _ids(tenants: Tenants, who: str, query: str = "") -> set[str]:
    flavors = tenants.call(who, "GET", f"/flavors/detail{query}").json()["flavors"]
    return {f["id"] for f in flavors}


def _access(tenants: Tenants, flavor: str, action: str, project: str) -> httpx.Response:
    return tenants.call(
        "admin", "POST", f"/flavors/{flavor}/action", json={action: {"tenant": project}}
    )


def test_a_private_flavor_is_seen_and_used_only_with_access(tenants: Tenants) -> None:
    private = tenants.flavor_of("private", public=False)
    assert private not in _ids(tenants, "member_a")
    hidden = tenants.call("member_a", "GET", f"/flavors/{private}")
    assert hidden.status_code == 404 and f"Flavor {private} could not be found." in hidden.text
    refused = tenants.call(
        "member_a",
        "POST",
        "/servers",
        json={"server": {"name": "x", "flavorRef": private, "imageRef": tenants.image}},
    )
    assert refused.status_code == 400
    assert f"Flavor {private} could not be found." in refused.text

    granted = _access(tenants, private, "addTenantAccess", PROJECT_A)
    assert granted.status_code == 200, granted.text
    assert granted.json() == {"flavor_access": [{"flavor_id": private, "tenant_id": PROJECT_A}]}
    assert private in _ids(tenants, "member_a") and private not in _ids(tenants, "member_b")
    shown = tenants.call("member_a", "GET", f"/flavors/{private}").json()["flavor"]
    assert shown["os-flavor-access:is_public"] is False
    assert tenants.call("member_b", "GET", f"/flavors/{private}").status_code == 404
    server_id = tenants.boot("member_a", "on-private", flavor=private)
    assert tenants.call("member_a", "GET", f"/servers/{server_id}").status_code == 200

    listed = tenants.call("admin", "GET", f"/flavors/{private}/os-flavor-access").json()
    assert listed == {"flavor_access": [{"flavor_id": private, "tenant_id": PROJECT_A}]}
    removed = _access(tenants, private, "removeTenantAccess", PROJECT_A)
    assert removed.status_code == 200 and removed.json() == {"flavor_access": []}
    assert private not in _ids(tenants, "member_a")


def test_flavor_access_refusals(tenants: Tenants) -> None:
    private = tenants.flavor_of("private", public=False)
    assert _access(tenants, private, "addTenantAccess", PROJECT_B).status_code == 200
    again = _access(tenants, private, "addTenantAccess", PROJECT_B)
    assert again.status_code == 409
    assert (
        f"Flavor access already exists for flavor {private} and project {PROJECT_B} combination."
        in again.text
    )
    missing = _access(tenants, private, "removeTenantAccess", PROJECT_A)
    assert missing.status_code == 404
    assert f"Flavor access not found for {private} / {PROJECT_A} combination." in missing.text
    public = _access(tenants, tenants.flavor, "addTenantAccess", PROJECT_A)
    assert public.status_code == 409 and "Can not add access to a public flavor." in public.text
    no_list = tenants.call("admin", "GET", f"/flavors/{tenants.flavor}/os-flavor-access")
    assert no_list.status_code == 404
    assert "Access list not available for public flavors." in no_list.text
    bodies: list[dict[str, Any]] = [
        {"addTenantAccess": {}},
        {"addTenantAccess": {"tenant": ""}},
        {"bogus": {}},
    ]
    for body in bodies:
        bad = tenants.call("admin", "POST", f"/flavors/{private}/action", json=body)
        assert bad.status_code == 400, (body, bad.text)
    member = tenants.call(
        "member_b", "POST", f"/flavors/{private}/action", json={"addTenantAccess": {"tenant": "x"}}
    )
    assert member.status_code == 403
    assert (
        "Policy doesn't allow os_compute_api:os-flavor-access:add_tenant_access to be performed."
        in member.text
    )
    assert (
        tenants.call("member_b", "GET", f"/flavors/{private}/os-flavor-access").status_code == 403
    )


def test_is_public_filter_for_admins_as_nova(tenants: Tenants) -> None:
    private = tenants.flavor_of("private", public=False)
    public = tenants.flavor
    # Absent: public ones and those the admin's own project may use.
    assert _ids(tenants, "admin") == {public}
    assert _ids(tenants, "admin", "?is_public=false") == {private}
    assert _ids(tenants, "admin", "?is_public=none") == {public, private}
    assert _ids(tenants, "admin", "?is_public=true") == {public}
    bad = tenants.call("admin", "GET", "/flavors?is_public=maybe")
    assert bad.status_code == 400 and "Invalid is_public filter [maybe]" in bad.text
    # Others' is_public is ignored: always the public ones and their own.
    assert _ids(tenants, "member_a", "?is_public=none") == {public}
    assert _ids(tenants, "member_a", "?is_public=false") == {public}
    # An admin finds any flavor by id.
    assert tenants.call("admin", "GET", f"/flavors/{private}").status_code == 200


def test_resize_to_a_private_flavor_needs_access(tenants: Tenants) -> None:
    server_id = tenants.boot("member_a", "a")
    private = tenants.flavor_of("bigger", vcpus=2, public=False)
    response = tenants.call(
        "member_a", "POST", f"/servers/{server_id}/action", json={"resize": {"flavorRef": private}}
    )
    assert response.status_code == 400 and "Unable to locate requested flavor." in response.text
