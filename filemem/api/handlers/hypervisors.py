"""os-hypervisors: one per compute service, sizes from its Placement inventory and usage.

As nova: cpu_info is a JSON string before 2.28 and an object from it; from 2.33 the lists
take limit and marker (a hypervisor id) and say where the next page starts.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Path, Request

from filemem.api.context import ApiContext, get_context
from filemem.api.errors import BadRequest, NotFound
from filemem.api.handlers import paging
from filemem.api.handlers import services as service_views
from filemem.api.microversion import at_least
from filemem.db import api as db_api
from filemem.db.models import Service
from filemem.placement.client import PlacementApiError

HypervisorIdPath = Annotated[str, Path(max_length=255)]
CPU_INFO_OBJECT_SINCE = "2.28"
PAGING_SINCE = "2.33"
PatternPath = Annotated[str, Path(min_length=1, max_length=255)]


def summary(ctx: ApiContext, service: Service) -> dict[str, Any]:
    return {
        "id": service.id,
        "hypervisor_hostname": service.host,
        "state": service_views.state(ctx, service),
        "status": "disabled" if service.disabled else "enabled",
    }


def _resources(ctx: ApiContext, provider_uuid: str | None) -> dict[str, tuple[int, int]]:
    """{resource class: (total, used)}; nova counts the reserved amount as used."""
    if not provider_uuid:
        return {}
    try:
        _generation, inventories = ctx.placement.get_inventories(provider_uuid)
        usages = ctx.placement.get_usages(provider_uuid)
    except PlacementApiError as exc:
        if exc.status == 404:
            return {}
        raise
    return {
        rc: (int(inv.get("total", 0)), int(inv.get("reserved", 0)) + int(usages.get(rc, 0)))
        for rc, inv in inventories.items()
    }


def detail(request: Request, service: Service, running_vms: int) -> dict[str, Any]:
    ctx = get_context(request)
    # filemem does not describe the host CPU: an empty description, in the version's type.
    cpu_info: Any = {} if at_least(request, CPU_INFO_OBJECT_SINCE) else json.dumps({})
    sizes = _resources(ctx, service.provider_uuid)
    memory, memory_used = sizes.get("MEMORY_MB", (0, 0))
    vcpus, vcpus_used = sizes.get("VCPU", (0, 0))
    disk, disk_used = sizes.get("DISK_GB", (0, 0))
    return {
        **summary(ctx, service),
        "hypervisor_type": "QEMU",
        "hypervisor_version": 0,
        "host_ip": service.migration_address,
        "cpu_info": cpu_info,
        "memory_mb": memory,
        "memory_mb_used": memory_used,
        "free_ram_mb": memory - memory_used,
        "vcpus": vcpus,
        "vcpus_used": vcpus_used,
        "local_gb": disk,
        "local_gb_used": disk_used,
        "free_disk_gb": disk - disk_used,
        "disk_available_least": disk - disk_used,
        "running_vms": running_vms,
        "current_workload": 0,
        "service": {
            "host": service.host,
            "id": service.id,
            "disabled_reason": service.disabled_reason,
        },
    }


def filemem_view(service: Service) -> dict[str, Any]:
    """filemem's own figures of a hypervisor: nova's os-hypervisors shapes have no room for
    them (Tempest checks that they hold nothing more), so GET /filemem/v1/hypervisors has them."""
    return {
        "id": service.id,
        "hypervisor_hostname": service.host,
        "file_backed_memory": service.file_backed,
        "file_backed_memory_mb": service.file_backed_memory_mb,
        "provider_uuid": service.provider_uuid,
    }


def list_filemem_hypervisors(request: Request) -> dict[str, Any]:
    """GET /filemem/v1/hypervisors (admin): each host's file-backed memory and provider."""
    services, _counts = _services(get_context(request))
    return {"hypervisors": [filemem_view(service) for service in services]}


def _services(ctx: ApiContext) -> tuple[list[Service], dict[str, int]]:
    with ctx.database.reader() as session:
        return db_api.list_services(session), db_api.count_instances_by_host(session)


def _page(request: Request, services: list[Service]) -> list[Service]:
    """From 2.33 the services after `marker` (an id), at most `limit`; all of them before."""
    if not at_least(request, PAGING_SINCE):
        return services
    marker = request.query_params.get("marker")
    if marker is not None:
        ids = [str(service.id) for service in services]
        if marker not in ids:
            raise BadRequest(f"marker [{marker}] not found")
        services = services[ids.index(marker) + 1 :]
    return services[: paging.page_size(request)]


def _listing(request: Request, items: list[dict[str, Any]], collection: str) -> dict[str, Any]:
    body: dict[str, Any] = {"hypervisors": items}
    links = paging.next_links(request, items, collection)
    if links and at_least(request, PAGING_SINCE):
        body["hypervisors_links"] = links
    return body


def list_hypervisors(request: Request) -> dict[str, Any]:
    """GET /os-hypervisors[?limit=&marker=] (paged from 2.33)."""
    ctx = get_context(request)
    services, _counts = _services(ctx)
    items = [summary(ctx, service) for service in _page(request, services)]
    return _listing(request, items, "os-hypervisors")


def list_hypervisors_detail(request: Request) -> dict[str, Any]:
    """GET /os-hypervisors/detail[?limit=&marker=] (paged from 2.33)."""
    services, counts = _services(get_context(request))
    items = [detail(request, s, counts.get(s.host, 0)) for s in _page(request, services)]
    return _listing(request, items, "os-hypervisors/detail")


def _find(ctx: ApiContext, hypervisor_id: str) -> tuple[Service, int]:
    """By integer id, as nova does before 2.53 (anything else is not found)."""
    services, counts = _services(ctx)
    for service in services:
        if str(service.id) == hypervisor_id:
            return service, counts.get(service.host, 0)
    raise NotFound(f"Hypervisor with ID '{hypervisor_id}' could not be found.")


def show_hypervisor(request: Request, hypervisor_id: HypervisorIdPath) -> dict[str, Any]:
    """GET /os-hypervisors/{id}."""
    ctx = get_context(request)
    service, running = _find(ctx, hypervisor_id)
    return {"hypervisor": detail(request, service, running)}


def hypervisor_uptime(request: Request, hypervisor_id: HypervisorIdPath) -> dict[str, Any]:
    """GET /os-hypervisors/{id}/uptime (the openstack CLI asks it in `hypervisor show`).

    filemem does not track host uptime; an empty string (not null, which the CLI cannot
    parse) says so.
    """
    ctx = get_context(request)
    service, _running = _find(ctx, hypervisor_id)
    return {"hypervisor": {**summary(ctx, service), "uptime": ""}}


def search_hypervisors(request: Request, pattern: PatternPath) -> dict[str, Any]:
    """GET /os-hypervisors/{pattern}/search: hostnames containing the pattern."""
    ctx = get_context(request)
    services, _counts = _services(ctx)
    found = [summary(ctx, s) for s in services if pattern in s.host]
    if not found:
        raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    return {"hypervisors": found}


STATISTICS_KEYS = (
    "memory_mb",
    "memory_mb_used",
    "free_ram_mb",
    "vcpus",
    "vcpus_used",
    "local_gb",
    "local_gb_used",
    "free_disk_gb",
    "disk_available_least",
    "running_vms",
    "current_workload",
)


def hypervisor_statistics(request: Request) -> dict[str, Any]:
    """GET /os-hypervisors/statistics (deprecated by nova in 2.88): the sums of /detail."""
    ctx = get_context(request)
    services, counts = _services(ctx)
    details = [detail(request, s, counts.get(s.host, 0)) for s in services]
    totals = {key: sum(int(d[key]) for d in details) for key in STATISTICS_KEYS}
    return {"hypervisor_statistics": {"count": len(details), **totals}}
