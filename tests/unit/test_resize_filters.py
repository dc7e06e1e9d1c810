"""A resize runs the scheduler's filters for the new flavor on the server's own host (nova
schedules a resize too): a huge-page flavor on a file-backed host, or a disabled host, is
refused with the filter's words and nothing moves."""

from __future__ import annotations

from typing import cast

from filemem.common.resources import MEMORY_BACKING_FILE_TRAIT
from filemem.db import api as db_api
from filemem.scheduler import Scheduler
from tests.unit import tenants_app
from tests.unit.tenants_app import Tenants

tenants = tenants_app.tenants


def _active(tenants: Tenants) -> str:
    server = tenants.boot("member_a", "resized")
    with tenants.ctx.database.session() as session:
        values = {"vm_state": "active", "task_state": None}
        assert db_api.update_instance(session, server, values) is not None
    return server


def _resize(tenants: Tenants, server: str, flavor: str) -> tuple[int, str]:
    body = {"resize": {"flavorRef": flavor}}
    response = tenants.call("member_a", "POST", f"/servers/{server}/action", json=body)
    return response.status_code, response.text


def _mark_file_backed(tenants: Tenants) -> None:
    """What a file-backed host's agent reports to Placement, then seen by the scheduler."""
    provider = tenants.placement.get_provider_by_name(tenants.host)
    assert provider is not None
    assert tenants.placement.set_traits(provider.uuid, [MEMORY_BACKING_FILE_TRAIT])
    cast(Scheduler, tenants.ctx.scheduler).cache.refresh()


def test_a_huge_page_flavor_is_refused_on_a_file_backed_host(tenants: Tenants) -> None:
    _mark_file_backed(tenants)
    server = _active(tenants)
    before = tenants.placement.get_allocations(server)[1]
    huge = tenants.flavor_of("huge", ram=512)
    specs = {"extra_specs": {"hw:mem_page_size": "large"}}
    added = tenants.call("admin", "POST", f"/flavors/{huge}/os-extra_specs", json=specs)
    assert added.status_code == 200, added.text
    status, text = _resize(tenants, server, huge)
    assert status == 400, text
    assert f"No valid host was found. Host {tenants.host} has {MEMORY_BACKING_FILE_TRAIT}" in text
    assert "huge pages" in text and "flavor huge cannot run there" in text
    assert tenants.placement.get_allocations(server)[1] == before
    shown = tenants.call("member_a", "GET", f"/servers/{server}").json()["server"]
    assert shown["status"] == "ACTIVE"
    # A plain bigger flavor still resizes on the same host.
    bigger = tenants.flavor_of("bigger", ram=512)
    assert _resize(tenants, server, bigger)[0] == 202


def test_a_disabled_host_takes_no_resize(tenants: Tenants) -> None:
    server = _active(tenants)
    body = {"host": tenants.host, "binary": "filemem-compute"}
    assert tenants.call("admin", "PUT", "/os-services/disable", json=body).status_code == 200
    status, text = _resize(tenants, server, tenants.flavor_of("wider", vcpus=2))
    assert status == 400, text
    assert f"Host {tenants.host} is disabled or down" in text
