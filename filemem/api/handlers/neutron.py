"""A read-only Neutron v2.0 view of the built-in network at /network, for the openstack CLI.

`openstack network list`, `subnet list`, `port list --server X` and `server create --network
NAME` (which looks the name up here) work against it. Networks and subnets are shared; a
caller who is not an admin sees its own project's ports only.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import Path, Request
from fastapi.responses import JSONResponse

from filemem.api import policy
from filemem.api.context import get_context
from filemem.api.errors import BadRequest
from filemem.api.handlers.servers import visible_project
from filemem.api.links import base_url
from filemem.api.schemas.common import is_uuid
from filemem.conductor.network import NetworkInfo, PortFilter, PortInfo
from filemem.db import ports as db_ports

PREFIX = "/network"
V2 = f"{PREFIX}/v2.0"
IdPath = Annotated[str, Path(max_length=255)]
# Neutron's timestamps for objects that have none of their own (the network is configured).
EPOCH = "1970-01-01T00:00:00Z"
MAX_FILTER_VALUES = 200


def not_found(kind: str, ident: str) -> JSONResponse:
    """Neutron's 404 body."""
    name = {"Network": "Network", "Subnet": "Subnet", "Port": "Port"}[kind]
    return JSONResponse(
        {
            "NeutronError": {
                "type": f"{name}NotFound",
                "message": f"{name} {ident} could not be found.",
                "detail": "",
            }
        },
        status_code=404,
    )


def versions(request: Request) -> dict[str, Any]:
    """GET /network/: Neutron's version list (v2.0 only)."""
    href = f"{base_url(request)}{V2}/"
    return {
        "versions": [{"id": "v2.0", "status": "CURRENT", "links": [{"rel": "self", "href": href}]}]
    }


def resources(request: Request) -> dict[str, Any]:
    """GET /network/v2.0: the collections served."""
    base = f"{base_url(request)}{V2}"
    return {
        "resources": [
            {
                "name": name[:-1],
                "collection": name,
                "links": [{"rel": "self", "href": f"{base}/{name}"}],
            }
            for name in ("networks", "subnets", "ports")
        ]
    }


def extensions(request: Request) -> dict[str, Any]:
    """GET /network/v2.0/extensions: none (the view is Neutron's core only)."""
    return {"extensions": []}


def network_view(request: Request, network: NetworkInfo) -> dict[str, Any]:
    project = get_context(request).project_id
    return {
        "id": network.id,
        "name": network.name,
        "tenant_id": project,
        "project_id": project,
        "status": "ACTIVE",
        "admin_state_up": True,
        "shared": True,
        "subnets": [network.subnet_id] if network.subnet_id else [],
        "mtu": network.mtu,
        "router:external": False,
        "is_default": True,
        "port_security_enabled": False,
        "availability_zones": [],
        "availability_zone_hints": [],
        "ipv4_address_scope": None,
        "ipv6_address_scope": None,
        "provider:network_type": "flat",
        "provider:physical_network": None,
        "provider:segmentation_id": None,
        "description": "",
        "tags": [],
        "revision_number": 0,
        "created_at": EPOCH,
        "updated_at": EPOCH,
    }


def subnet_view(request: Request, network: NetworkInfo) -> dict[str, Any]:
    project = get_context(request).project_id
    return {
        "id": network.subnet_id,
        "name": f"{network.name}-subnet",
        "network_id": network.id,
        "tenant_id": project,
        "project_id": project,
        "ip_version": ipaddress.ip_network(network.cidr).version,
        "cidr": network.cidr,
        "gateway_ip": network.gateway,
        "allocation_pools": _pools(network),
        "dns_nameservers": list(network.dns_nameservers),
        "host_routes": [],
        "enable_dhcp": True,
        "ipv6_ra_mode": None,
        "ipv6_address_mode": None,
        "subnetpool_id": None,
        "segment_id": None,
        "service_types": [],
        "description": "",
        "tags": [],
        "revision_number": 0,
        "created_at": EPOCH,
        "updated_at": EPOCH,
    }


def _pools(network: NetworkInfo) -> list[dict[str, str]]:
    """The subnet's host addresses without the gateway, as Neutron's default pools."""
    subnet = ipaddress.IPv4Network(network.cidr)
    gateway = ipaddress.IPv4Address(network.gateway)
    first, last = subnet.network_address + 1, subnet.broadcast_address - 1
    pools = [(first, gateway - 1), (gateway + 1, last)]
    return [{"start": str(a), "end": str(b)} for a, b in pools if a <= b]


def port_view(port: PortInfo, owner: db_ports.Owner | None, admin: bool) -> dict[str, Any]:
    """Neutron's port; binding:host_id only for an admin (as Neutron's policy)."""
    project_id = owner.project_id if owner is not None else None
    created = f"{port.created_at.isoformat(timespec='seconds')}Z"
    fixed = (
        []
        if port.ip_address is None
        else [{"subnet_id": port.network.subnet_id, "ip_address": port.ip_address}]
    )
    view: dict[str, Any] = {
        "id": port.id,
        "name": "",
        "network_id": port.network.id,
        "tenant_id": project_id,
        "project_id": project_id,
        "mac_address": port.mac_address,
        "admin_state_up": True,
        "status": "ACTIVE",
        "device_id": port.instance_uuid,
        "device_owner": "compute:nova",
        "fixed_ips": fixed,
        "allowed_address_pairs": [],
        "extra_dhcp_opts": [],
        "security_groups": [],
        "port_security_enabled": False,
        "binding:vnic_type": "normal",
        "binding:vif_type": port.vif_type,
        "binding:vif_details": dict(port.vif_details),
        "description": "",
        "tags": [],
        "revision_number": 0,
        "created_at": created,
        "updated_at": created,
    }
    if admin:
        view["binding:host_id"] = (owner.host if owner is not None else None) or ""
    return view


def _filtered(request: Request, items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutron's attribute filters: ?key=value (repeated: any of them) on scalar fields;
    `fields`, paging and sorting parameters are ignored (every field is returned)."""
    wanted: dict[str, set[str]] = {}
    for key, value in request.query_params.multi_items():
        if key in ("fields", "limit", "marker", "page_reverse", "sort_key", "sort_dir"):
            continue
        wanted.setdefault(key, set()).add(value)
        if len(wanted[key]) > MAX_FILTER_VALUES:
            raise BadRequest(f"{key}: at most {MAX_FILTER_VALUES} values")
    return [item for item in items if all(_matches(item.get(k), v) for k, v in wanted.items())]


def _matches(value: Any, wanted: set[str]) -> bool:
    if isinstance(value, bool):
        return str(value).lower() in {w.lower() for w in wanted}
    if isinstance(value, str | int):
        return str(value) in wanted
    return False  # a filter on a field this view has not, or a list: nothing matches


def _one(items: list[dict[str, Any]], ident: str) -> dict[str, Any] | None:
    return next((item for item in items if item["id"] == ident), None)


def _networks(request: Request) -> list[NetworkInfo]:
    return get_context(request).network.list_networks()


def list_networks(request: Request) -> dict[str, Any]:
    views = [network_view(request, n) for n in _networks(request)]
    return {"networks": _filtered(request, views)}


def show_network(request: Request, network_id: IdPath) -> Any:
    found = _one([network_view(request, n) for n in _networks(request)], network_id)
    return {"network": found} if found is not None else not_found("Network", network_id)


def list_subnets(request: Request) -> dict[str, Any]:
    views = [subnet_view(request, n) for n in _networks(request) if n.subnet_id]
    return {"subnets": _filtered(request, views)}


def show_subnet(request: Request, subnet_id: IdPath) -> Any:
    views = [subnet_view(request, n) for n in _networks(request) if n.subnet_id]
    found = _one(views, subnet_id)
    return {"subnet": found} if found is not None else not_found("Subnet", subnet_id)


def _ports(request: Request, where: PortFilter) -> list[dict[str, Any]]:
    """Ports the caller may see (its project's, or all for an admin), as Neutron's."""
    ctx = get_context(request)
    where = dataclasses.replace(where, project_id=visible_project(request))
    with ctx.database.reader() as session:
        ports = ctx.network.list_ports(session, where)
        owners = db_ports.owners(session, {port.instance_uuid for port in ports})
    admin = policy.is_admin(request)
    return [port_view(port, owners.get(port.instance_uuid), admin) for port in ports]


def list_ports(request: Request) -> dict[str, Any]:
    """GET /network/v2.0/ports (device_id, network_id and the other scalar filters)."""
    params = request.query_params
    devices, networks = params.getlist("device_id"), params.getlist("network_id")
    if len(devices) > MAX_FILTER_VALUES:
        raise BadRequest(f"device_id: at most {MAX_FILTER_VALUES} values")
    if not all(is_uuid(value) for value in (*devices, *networks)):
        return {"ports": []}  # ids are uuids: nothing has another (and SQL never sees it)
    where = PortFilter(
        instance_uuids=devices or None,
        network_id=networks[0] if len(networks) == 1 else None,
    )
    return {"ports": _filtered(request, _ports(request, where))}


def show_port(request: Request, port_id: IdPath) -> Any:
    """GET /network/v2.0/ports/{id}: another project's port is a 404, as in Neutron."""
    ctx = get_context(request)
    project = visible_project(request)
    with ctx.database.reader() as session:
        port = ctx.network.show_port(session, port_id) if is_uuid(port_id) else None
        owner = db_ports.owners(session, {port.instance_uuid}) if port is not None else {}
    if port is None or (project is not None and owner[port.instance_uuid].project_id != project):
        return not_found("Port", port_id)
    return {"port": port_view(port, owner.get(port.instance_uuid), policy.is_admin(request))}
