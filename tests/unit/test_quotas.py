"""Quotas: nova's arithmetic and messages (pure), and per-project instances, cores and ram over
the API: create (multi-create, the recheck), resize, /limits and os-quota-sets."""

from __future__ import annotations

from typing import Any

import pytest

from filemem.api import quota as api_quota
from filemem.common import quota
from filemem.db import api as db_api
from filemem.db import server_migrations as migrations_db
from tests.unit import tenants_app
from tests.unit.tenants_app import PROJECT_A, PROJECT_B, Tenants

tenants = tenants_app.tenants
LIMITS = quota.Limits(instances=10, cores=20, ram=51200)


def used(instances: int = 0, cores: int = 0, ram: int = 0) -> dict[str, int]:
    return {"instances": instances, "cores": cores, "ram": ram}


def test_instances_allowed_builds_what_fits_from_min_count() -> None:
    assert quota.instances_allowed(LIMITS, used(), 1, 256, 1, 5) == 5
    assert quota.instances_allowed(LIMITS, used(8, 8, 2048), 1, 256, 1, 5) == 2
    assert quota.instances_allowed(LIMITS, used(0, 18, 0), 1, 256, 1, 5) == 2
    unlimited = quota.Limits(-1, -1, -1)
    assert quota.instances_allowed(unlimited, used(10**6, 10**6, 10**9), 64, 10**6, 3, 3) == 3


@pytest.mark.parametrize(
    ("current", "vcpus", "low", "high", "message"),
    [
        (
            used(9, 9, 0),
            1,
            2,
            2,
            "Quota exceeded for instances: Requested 2, but already used 9 of 10 instances",
        ),
        (
            used(10, 10, 0),
            1,
            1,
            1,
            "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances",
        ),
        (
            used(0, 18, 0),
            4,
            1,
            1,
            "Quota exceeded for cores: Requested 4, but already used 18 of 20 cores",
        ),
        (
            used(9, 19, 0),
            2,
            2,
            3,
            "Quota exceeded for instances, cores: Requested 2-3, 6, but already used 9, 19 of "
            "10, 20 instances, cores",
        ),
    ],
)
def test_over_quota_messages_are_novas(
    current: dict[str, int], vcpus: int, low: int, high: int, message: str
) -> None:
    with pytest.raises(quota.OverQuota) as raised:
        quota.instances_allowed(LIMITS, current, vcpus, 256, low, high)
    assert str(raised.value) == message


def test_resize_deltas() -> None:
    quota.check_deltas(LIMITS, used(1, 18, 0), {"cores": 2, "ram": 0})
    quota.check_deltas(LIMITS, used(1, 20, 51200), {"cores": -2, "ram": -512})
    with pytest.raises(
        quota.OverQuota,
        match="Quota exceeded for cores: Requested 3, but already used 18 of 20 cores",
    ):
        quota.check_deltas(LIMITS, used(1, 18, 0), {"cores": 3, "ram": 0})
    assert quota.effective_limits(LIMITS, {"cores": 4}) == quota.Limits(10, 4, 51200)


def _set(tenants: Tenants, project: str, **limits: Any) -> Any:
    return tenants.call("admin", "PUT", f"/os-quota-sets/{project}", json={"quota_set": limits})


def _boot(tenants: Tenants, who: str, flavor: str | None = None, **extra: Any) -> Any:
    body = {
        "server": {
            "name": "q",
            "flavorRef": flavor or tenants.flavor,
            "imageRef": tenants.image,
            **extra,
        }
    }
    return tenants.call(who, "POST", "/servers", json=body)


def test_the_eleventh_instance_is_refused(tenants: Tenants) -> None:
    """[quota] instances = 10 by default: ten servers, then nova's 403."""
    first = _boot(tenants, "member_a", min_count=7, max_count=7)
    assert first.status_code == 202, first.text
    for _ in range(3):
        assert _boot(tenants, "member_a").status_code == 202
    refused = _boot(tenants, "member_a")
    assert refused.status_code == 403
    assert refused.json()["forbidden"]["message"] == (
        "Quota exceeded for instances: Requested 1, but already used 10 of 10 instances"
    )
    # Another project's quota is its own.
    assert _boot(tenants, "member_b").status_code == 202
    limits = tenants.call("member_a", "GET", "/limits").json()["limits"]["absolute"]
    assert (limits["maxTotalInstances"], limits["totalInstancesUsed"]) == (10, 10)
    assert (limits["maxTotalCores"], limits["totalCoresUsed"]) == (20, 10)
    assert (limits["maxTotalRAMSize"], limits["totalRAMUsed"]) == (51200, 2560)


def test_multi_create_builds_what_the_quota_allows(tenants: Tenants) -> None:
    assert _set(tenants, PROJECT_A, instances=3).status_code == 200
    assert _boot(tenants, "member_a").status_code == 202
    some = _boot(tenants, "member_a", min_count=1, max_count=5, return_reservation_id=True)
    assert some.status_code == 202, some.text
    servers = tenants.call("member_a", "GET", "/servers").json()["servers"]
    assert len(servers) == 3
    assert _set(tenants, PROJECT_A, instances=5).status_code == 200
    refused = _boot(tenants, "member_a", min_count=3, max_count=4)
    assert refused.status_code == 403
    assert (
        "Quota exceeded for instances: Requested 3-4, but already used 3 of 5 instances"
        in refused.text
    )


def test_cores_and_resize_over_the_cores_quota(tenants: Tenants) -> None:
    assert _set(tenants, PROJECT_A, cores=4).status_code == 200
    one = tenants.boot("member_a", "one")
    tenants.boot("member_a", "two")
    wide = tenants.flavor_of("wide", vcpus=4)
    refused = _boot(tenants, "member_a", flavor=wide)
    assert refused.status_code == 403
    assert "Quota exceeded for cores: Requested 4, but already used 2 of 4 cores" in refused.text
    resize = tenants.call(
        "member_a", "POST", f"/servers/{one}/action", json={"resize": {"flavorRef": wide}}
    )
    assert resize.status_code == 403
    assert "Quota exceeded for cores: Requested 3, but already used 2 of 4 cores" in resize.text


def test_a_resize_that_raced_past_the_first_count_is_refused_at_the_hand_over(
    tenants: Tenants, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another API process grew the project between this resize's first count and its
    hand-over: the count under the project's lock refuses it with nova's 403, the allocation
    moves back to the old flavor and no migration is left behind."""
    assert _set(tenants, PROJECT_A, cores=4).status_code == 200
    one = tenants.boot("member_a", "one")
    tenants.boot("member_a", "two")
    with tenants.ctx.database.session() as session:
        values = {"vm_state": "active", "task_state": None}
        assert db_api.update_instance(session, one, values) is not None
    wide = tenants.flavor_of("wide", vcpus=4)
    before = tenants.placement.get_allocations(one)[1]

    # This process counted before the other committed: its first check saw room.
    def first_count_saw_room(request: Any, instance: Any, flavor: Any) -> quota.Limits:
        with tenants.ctx.database.reader() as session:
            return api_quota.project_limits(request, session, instance.project_id)

    monkeypatch.setattr(api_quota, "check_resize", first_count_saw_room)
    resize = tenants.call(
        "member_a", "POST", f"/servers/{one}/action", json={"resize": {"flavorRef": wide}}
    )
    assert resize.status_code == 403, resize.text
    assert "Quota exceeded for cores: Requested 3, but already used 2 of 4 cores" in resize.text
    assert tenants.placement.get_allocations(one)[1] == before
    with tenants.ctx.database.reader() as session:
        instance = db_api.get_instance(session, one)
        assert instance is not None
        assert (instance.vcpus, instance.task_state, instance.old_flavor) == (1, None, None)
        assert migrations_db.list_migrations(session, instance_uuid=one) == []


def test_the_recheck_undoes_a_create_another_api_raced_past_the_quota(
    tenants: Tenants, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two API processes both count 9 of 10 and insert: the recheck after the insert finds 11,
    deletes this request's servers and refuses it (nova's recheck_quota)."""
    assert _set(tenants, PROJECT_A, instances=1).status_code == 200
    assert _boot(tenants, "member_a").status_code == 202
    # This process counted before the other committed: its first check saw room.
    monkeypatch.setattr(api_quota, "allowed_instances", lambda *args: args[-1])
    refused = _boot(tenants, "member_a")
    assert refused.status_code == 403
    assert (
        "Quota exceeded for instances: Requested 1, but already used 1 of 1 instances"
        in refused.text
    )
    assert len(tenants.call("member_a", "GET", "/servers").json()["servers"]) == 1


def test_quota_sets_show_set_revert(tenants: Tenants) -> None:
    tenants.boot("member_a", "a")
    shown = tenants.call("member_a", "GET", f"/os-quota-sets/{PROJECT_A}").json()["quota_set"]
    assert (shown["id"], shown["instances"], shown["cores"], shown["ram"]) == (
        PROJECT_A,
        10,
        20,
        51200,
    )
    assert _set(tenants, PROJECT_A, instances=5, cores="8").json()["quota_set"]["cores"] == 8
    detail = tenants.call("reader_a", "GET", f"/os-quota-sets/{PROJECT_A}/detail").json()[
        "quota_set"
    ]
    assert detail["instances"] == {"limit": 5, "in_use": 1, "reserved": 0}
    assert detail["cores"] == {"limit": 8, "in_use": 1, "reserved": 0}
    defaults = tenants.call("member_b", "GET", f"/os-quota-sets/{PROJECT_A}/defaults").json()
    assert defaults["quota_set"]["instances"] == 10
    under = _set(tenants, PROJECT_A, instances=0)
    assert under.status_code == 400
    assert (
        "Quota limit 0 for instances must be greater than or equal to already used and reserved 1."
        in under.text
    )
    assert _set(tenants, PROJECT_A, instances=0, force=True).status_code == 200
    for bad in ({"instances": -2}, {"instances": "x"}, {"bogus": 1}, {"key_pairs": 3}):
        assert _set(tenants, PROJECT_A, **bad).status_code == 400, bad
    reverted = tenants.call("admin", "DELETE", f"/os-quota-sets/{PROJECT_A}")
    assert reverted.status_code == 202
    shown = tenants.call("member_a", "GET", f"/os-quota-sets/{PROJECT_A}").json()["quota_set"]
    assert (shown["instances"], shown["cores"]) == (10, 20)
    other = tenants.call("member_b", "GET", f"/os-quota-sets/{PROJECT_A}")
    assert other.status_code == 403 and "os_compute_api:os-quota-sets:show" in other.text


def test_limits_of_another_project_need_an_admin(tenants: Tenants) -> None:
    tenants.boot("member_b", "b")
    refused = tenants.call("member_a", "GET", f"/limits?tenant_id={PROJECT_B}")
    assert refused.status_code == 403
    assert (
        "Policy doesn't allow os_compute_api:limits:other_project to be performed." in refused.text
    )
    theirs = tenants.call("admin", "GET", f"/limits?tenant_id={PROJECT_B}").json()
    assert theirs["limits"]["absolute"]["totalInstancesUsed"] == 1
    mine = tenants.call("member_a", "GET", "/limits").json()
    assert mine["limits"]["absolute"]["totalInstancesUsed"] == 0


def test_quota_defaults_come_from_the_quota_group(embedded_placement: Any, tmp_path: Any) -> None:
    conf = "[quota]\ninstances = 2\ncores = -1\nram = -1\nmetadata_items = 1\n"
    for app in tenants_app.tenants_app(tmp_path, embedded_placement, conf):
        assert _boot(app, "member_a", min_count=2, max_count=2).status_code == 202
        refused = _boot(app, "member_a")
        assert "Requested 1, but already used 2 of 2 instances" in refused.text
        limits = app.call("member_a", "GET", "/limits").json()["limits"]["absolute"]
        assert (limits["maxTotalInstances"], limits["maxTotalCores"]) == (2, -1)
        assert limits["maxServerMeta"] == 1
        too_many = _boot(app, "member_b", metadata={"a": "1", "b": "2"})
        assert too_many.status_code == 403
        assert too_many.json()["forbidden"]["message"] == (
            "Maximum number of metadata items exceeds 1"
        )


def test_a_projects_metadata_items_quota_holds_at_create_metadata_and_rebuild(
    tenants: Tenants,
) -> None:
    """nova's metadata_items: a limit on each server, set per project like the others."""
    assert _set(tenants, PROJECT_A, metadata_items=2).json()["quota_set"]["metadata_items"] == 2
    three = {"a": "1", "b": "2", "c": "3"}
    refused = _boot(tenants, "member_a", metadata=three)
    assert refused.status_code == 403
    assert refused.json()["forbidden"]["message"] == "Maximum number of metadata items exceeds 2"
    assert _boot(tenants, "member_b", metadata=three).status_code == 202  # B keeps 128
    server = tenants.boot("member_a", "meta", metadata={"a": "1", "b": "2"})
    with tenants.ctx.database.session() as session:
        values = {"vm_state": "active", "task_state": None}
        assert db_api.update_instance(session, server, values) is not None
    more = tenants.call(
        "member_a", "POST", f"/servers/{server}/metadata", json={"metadata": {"c": "3"}}
    )
    assert more.status_code == 403 and "exceeds 2" in more.text
    rebuild = {"rebuild": {"imageRef": tenants.image, "metadata": three}}
    rebuilt = tenants.call("member_a", "POST", f"/servers/{server}/action", json=rebuild)
    assert rebuilt.status_code == 403 and "exceeds 2" in rebuilt.text
    limits = tenants.call("member_a", "GET", "/limits").json()["limits"]["absolute"]
    assert limits["maxServerMeta"] == 2
    detail = tenants.call("member_a", "GET", f"/os-quota-sets/{PROJECT_A}/detail").json()
    assert detail["quota_set"]["metadata_items"] == {"limit": 2, "in_use": 0, "reserved": 0}
    defaults = tenants.call("member_a", "GET", f"/os-quota-sets/{PROJECT_A}/defaults").json()
    assert defaults["quota_set"]["metadata_items"] == 128
