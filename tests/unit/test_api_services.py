"""os-services: enable/disable by nova's binary name, forced_down and force-down from 2.11."""

from __future__ import annotations

from filemem.db import api as db_api
from tests.unit.api_app import Api


def test_forced_down_is_shown_from_2_11(api: Api) -> None:
    api.register_host("svc-a")
    (old,) = api.compute("GET", "/os-services", "2.10")["services"]
    assert "forced_down" not in old and old["state"] == "up"
    (new,) = api.compute("GET", "/os-services", "2.11")["services"]
    assert new["forced_down"] is False
    assert set(new) == {
        "id",
        "binary",
        "host",
        "zone",
        "status",
        "state",
        "updated_at",
        "disabled_reason",
        "forced_down",
    }


def test_force_down_marks_the_host_down_and_unschedulable(api: Api) -> None:
    api.register_host("svc-down")
    body = {"host": "svc-down", "binary": "nova-compute", "forced_down": True}
    answer = api.compute("PUT", "/os-services/force-down", "2.11", json=body)
    assert answer == {"service": body}
    (service,) = api.compute("GET", "/os-services?binary=nova-compute", "2.11")["services"]
    assert (service["forced_down"], service["state"]) == (True, "down")
    (hyp,) = api.compute("GET", "/os-hypervisors")["hypervisors"]
    assert hyp["state"] == "down"
    with api.ctx.database.reader() as session:
        assert db_api.live_services(session, api.ctx.down_after) == []
    assert api.scheduler.invalidations >= 1
    body = {"host": "svc-down", "binary": "filemem-compute", "forced_down": "false"}
    answer = api.compute("PUT", "/os-services/force-down", "2.37", json=body)
    assert answer["service"]["forced_down"] is False
    with api.ctx.database.reader() as session:
        assert [s.host for s in db_api.live_services(session, api.ctx.down_after)] == ["svc-down"]


def test_force_down_refusals(api: Api) -> None:
    api.register_host("svc-r")
    body = {"host": "svc-r", "binary": "nova-compute", "forced_down": True}
    before = api.call("PUT", "/v2.1/os-services/force-down", "2.10", json=body)
    assert before.status_code == 404 and "Unknown action" in before.text
    missing = {"host": "svc-r", "binary": "nova-compute"}
    response = api.call("PUT", "/v2.1/os-services/force-down", "2.11", json=missing)
    assert response.status_code == 400 and "Missing forced_down field" in response.text
    bad = {**body, "forced_down": "maybe"}
    response = api.call("PUT", "/v2.1/os-services/force-down", "2.11", json=bad)
    assert response.status_code == 400 and "forced_down" in response.text
    other = {**body, "binary": "nova-scheduler"}
    response = api.call("PUT", "/v2.1/os-services/force-down", "2.11", json=other)
    assert response.status_code == 400
    assert "Updating a nova-scheduler service is not supported" in response.text
    unknown = {**body, "host": "nowhere"}
    response = api.call("PUT", "/v2.1/os-services/force-down", "2.11", json=unknown)
    assert response.status_code == 404
    assert "Could not find binary nova-compute on host nowhere." in response.text


def test_disable_with_reason_by_either_binary_name(api: Api) -> None:
    api.register_host("svc-d")
    body = {"host": "svc-d", "binary": "nova-compute", "disabled_reason": "maintenance"}
    answer = api.compute("PUT", "/os-services/disable-log-reason", json=body)
    assert answer == {"service": {**body, "status": "disabled"}}
    (service,) = api.compute("GET", "/os-services?host=svc-d")["services"]
    assert (service["status"], service["disabled_reason"]) == ("disabled", "maintenance")
    body = {"host": "svc-d", "binary": "filemem-compute"}
    assert api.compute("PUT", "/os-services/enable", json=body)["service"]["status"] == "enabled"


def test_a_service_id_of_non_ascii_digits_is_400_not_500(api: Api) -> None:
    # "³".isdigit() is true but int("³") fails: the fuzz test found this as a 500 on PostgreSQL.
    for service_id in ("%C2%B3", "%D9%A3", "1%C2%B3"):
        response = api.call("DELETE", f"/v2.1/os-services/{service_id}", "2.37")
        assert response.status_code == 400, (service_id, response.text)
