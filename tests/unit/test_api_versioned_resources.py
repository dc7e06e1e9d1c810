"""limits, os-quota-sets, os-hypervisors, os-availability-zone and tenant usage per microversion."""

from __future__ import annotations

import pytest

from tests.unit.api_app import Api

NETWORK_LIMITS = {
    "maxSecurityGroups",
    "maxSecurityGroupRules",
    "maxTotalFloatingIps",
    "totalFloatingIpsUsed",
    "totalSecurityGroupsUsed",
}
NETWORK_QUOTAS = {"fixed_ips", "floating_ips", "security_groups", "security_group_rules"}
QUOTAS_2_36 = {
    "cores",
    "injected_file_content_bytes",
    "injected_file_path_bytes",
    "injected_files",
    "instances",
    "key_pairs",
    "metadata_items",
    "ram",
    "server_group_members",
    "server_groups",
}


@pytest.mark.parametrize(("version", "network"), [("2.1", True), ("2.35", True), ("2.36", False)])
def test_limits_lose_network_limits_at_2_36(api: Api, version: str, network: bool) -> None:
    limits = api.compute("GET", "/limits", version)["limits"]
    assert limits["rate"] == []
    absolute = limits["absolute"]
    assert (set(absolute) >= NETWORK_LIMITS) is network
    assert not network or absolute["maxTotalFloatingIps"] == -1
    assert network or not NETWORK_LIMITS & set(absolute)
    assert {"maxTotalRAMSize", "totalRAMUsed", "maxImageMeta", "maxServerGroups"} <= set(absolute)


@pytest.mark.parametrize("suffix", ["", "/defaults", "/detail"])
def test_quota_sets_lose_network_quotas_at_2_36(api: Api, suffix: str) -> None:
    old = api.compute("GET", f"/os-quota-sets/filemem{suffix}", "2.35")["quota_set"]
    new = api.compute("GET", f"/os-quota-sets/filemem{suffix}", "2.36")["quota_set"]
    assert set(old) == QUOTAS_2_36 | NETWORK_QUOTAS | {"id"}
    assert set(new) == QUOTAS_2_36 | {"id"}
    assert new["id"] == "filemem"
    cores = {"limit": 20, "in_use": 0, "reserved": 0} if suffix == "/detail" else 20
    key_pairs = {"limit": -1, "in_use": 0, "reserved": 0} if suffix == "/detail" else -1
    assert new["cores"] == cores and new["key_pairs"] == key_pairs


def test_quota_updates_of_unenforced_quotas_are_refused_naming_why(api: Api) -> None:
    body = {"quota_set": {"key_pairs": 5}}
    response = api.call("PUT", "/v2.1/os-quota-sets/filemem", "2.37", json=body)
    assert response.status_code == 400
    message = response.json()["badRequest"]["message"]
    assert "enforces only the instances, cores, ram and metadata_items quotas" in message


def test_hypervisor_cpu_info_is_an_object_from_2_28(api: Api) -> None:
    api.register_host("cpu-host")
    hid = api.service_id("cpu-host")
    old = api.compute("GET", f"/os-hypervisors/{hid}", "2.27")["hypervisor"]
    new = api.compute("GET", f"/os-hypervisors/{hid}", "2.28")["hypervisor"]
    assert old["cpu_info"] == "{}" and new["cpu_info"] == {}
    (listed,) = api.compute("GET", "/os-hypervisors/detail", "2.37")["hypervisors"]
    assert listed["cpu_info"] == {} and listed["memory_mb"] == 4096
    missing = api.call("GET", "/v2.1/os-hypervisors/cpu-host")
    assert missing.status_code == 404
    assert "Hypervisor with ID 'cpu-host' could not be found." in missing.text


def test_hypervisors_page_from_2_33(api: Api) -> None:
    for host in ("page-a", "page-b", "page-c"):
        api.register_host(host)
    ids = [api.service_id(h) for h in ("page-a", "page-b", "page-c")]
    unpaged = api.compute("GET", "/os-hypervisors?limit=1", "2.32")
    assert len(unpaged["hypervisors"]) == 3 and "hypervisors_links" not in unpaged
    first = api.compute("GET", "/os-hypervisors?limit=2", "2.33")
    assert [h["id"] for h in first["hypervisors"]] == ids[:2]
    (link,) = first["hypervisors_links"]
    assert link["rel"] == "next"
    assert link["href"].endswith(f"/v2.1/os-hypervisors?limit=2&marker={ids[1]}")
    rest = api.compute("GET", f"/os-hypervisors/detail?limit=2&marker={ids[1]}", "2.33")
    assert [h["id"] for h in rest["hypervisors"]] == ids[2:]
    assert "hypervisors_links" not in rest
    bad = api.call("GET", "/v2.1/os-hypervisors?marker=999999", "2.33")
    assert bad.status_code == 400 and "marker [999999] not found" in bad.text
    bad = api.call("GET", "/v2.1/os-hypervisors?limit=-1", "2.33")
    assert bad.status_code == 400 and "limit must be >= 0" in bad.text


def test_hypervisor_statistics_still_served_at_2_37(api: Api) -> None:
    api.register_host("stats-a", memory_mb=1024, vcpus=2)
    api.register_host("stats-b", memory_mb=2048, vcpus=2)
    stats = api.compute("GET", "/os-hypervisors/statistics", "2.37")["hypervisor_statistics"]
    assert (stats["count"], stats["memory_mb"], stats["vcpus"]) == (2, 3072, 4)


def test_availability_zones_follow_the_services(api: Api) -> None:
    assert api.compute("GET", "/os-availability-zone") == {"availabilityZoneInfo": []}
    assert api.compute("GET", "/os-availability-zone/detail") == {"availabilityZoneInfo": []}
    api.register_host("az-a")
    api.register_host("az-b")
    (zone,) = api.compute("GET", "/os-availability-zone")["availabilityZoneInfo"]
    assert zone == {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None}
    api.compute("PUT", "/os-services/disable", json={"host": "az-b", "binary": "nova-compute"})
    (zone,) = api.compute("GET", "/os-availability-zone/detail", "2.37")["availabilityZoneInfo"]
    assert zone["zoneState"] == {"available": True} and set(zone["hosts"]) == {"az-a"}
    service = zone["hosts"]["az-a"]["nova-compute"]
    assert (service["available"], service["active"]) == (True, True)
    assert service["updated_at"]
    api.compute("PUT", "/os-services/disable", json={"host": "az-a", "binary": "nova-compute"})
    (zone,) = api.compute("GET", "/os-availability-zone/detail")["availabilityZoneInfo"]
    assert zone == {"zoneName": "nova", "zoneState": {"available": False}, "hosts": None}


def test_tenant_usage_is_unpaged_up_to_2_37(api: Api) -> None:
    usage = api.compute("GET", "/os-simple-tenant-usage?detailed=1", "2.37")
    assert usage == {"tenant_usages": []}
    shown = api.compute("GET", "/os-simple-tenant-usage/filemem", "2.37")
    assert shown == {"tenant_usage": {}}
    bad = api.call("GET", "/v2.1/os-simple-tenant-usage?start=yesterday", "2.37")
    assert bad.status_code == 400 and "Datetime is in invalid format" in bad.text
