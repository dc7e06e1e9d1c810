"""A server's addresses and interfaces: GET /servers/{id}/ips[/{network}] and os-interface."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path, Request

from filemem.api import policy
from filemem.api.context import get_context
from filemem.api.errors import NotFound
from filemem.api.handlers import network_views
from filemem.api.handlers.servers import ServerIdPath, find_visible
from filemem.api.policies import network as policies
from filemem.conductor.network import PortInfo
from filemem.db.models import Instance

NamePath = Annotated[str, Path(max_length=255)]


def _server(request: Request, server_id: str, rule: str) -> tuple[Instance, list[PortInfo]]:
    """The visible server (404 otherwise) and its ports, once the caller passes `rule` on it."""
    with get_context(request).database.reader() as session:
        instance = find_visible(request, session, server_id)
    policy.authorize(
        request, rule, {"project_id": instance.project_id, "user_id": instance.user_id}
    )
    return instance, network_views.ports_of(request, instance)


def list_ips(request: Request, server_id: ServerIdPath) -> dict[str, Any]:
    """GET /servers/{id}/ips: every network's fixed IPs (nova's, without type and MAC)."""
    _instance, ports = _server(request, server_id, policies.IPS_INDEX)
    return {"addresses": network_views.ips(ports, extended=False)}


def show_ips(request: Request, server_id: ServerIdPath, network: NamePath) -> dict[str, Any]:
    """GET /servers/{id}/ips/{network name}: that network's IPs, or 404 as nova's."""
    _instance, ports = _server(request, server_id, policies.IPS_SHOW)
    found = network_views.ips(ports, extended=False)
    if network not in found:
        raise NotFound("Instance is not a member of specified network")
    return {network: found[network]}


def list_interfaces(request: Request, server_id: ServerIdPath) -> dict[str, Any]:
    """GET /servers/{id}/os-interface: the server's ports as interface attachments."""
    _instance, ports = _server(request, server_id, policies.INTERFACES_LIST)
    return {"interfaceAttachments": [network_views.interface_attachment(p) for p in ports]}


def show_interface(request: Request, server_id: ServerIdPath, port_id: NamePath) -> dict[str, Any]:
    """GET /servers/{id}/os-interface/{port_id}: 404 (nova's words) for another's port."""
    instance, ports = _server(request, server_id, policies.INTERFACES_SHOW)
    for port in ports:
        if port.id == port_id:
            return {"interfaceAttachment": network_views.interface_attachment(port)}
    raise NotFound(f"Instance {instance.uuid} does not have a port with id {port_id}")
