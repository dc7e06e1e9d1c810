"""A server's ports as nova shows them (addresses, ips, os-interface) and as agents plug them."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import Request

from filemem.api.context import get_context
from filemem.common.agent_contract.answers import NicView
from filemem.conductor.network import PortInfo
from filemem.db.models import Instance


def prefetch(request: Request, instances: Iterable[Instance]) -> None:
    """Read the ports of a page of servers at once, for ports_of (one query, not one each)."""
    ctx = get_context(request)
    uuids = [instance.uuid for instance in instances]
    if not ctx.network.enabled or not uuids:
        return
    with ctx.database.reader() as session:
        found = ctx.network.ports_of(session, uuids)
    cached: dict[str, list[PortInfo]] = getattr(request.state, "ports", None) or {}
    request.state.ports = {**cached, **found}


def ports_of(request: Request, instance: Instance) -> list[PortInfo]:
    """The instance's ports, from the request's prefetch when there was one."""
    ctx = get_context(request)
    if not ctx.network.enabled:
        return []
    cached: dict[str, list[PortInfo]] | None = getattr(request.state, "ports", None)
    if cached is None or instance.uuid not in cached:
        prefetch(request, [instance])
        cached = request.state.ports
    return list(cached.get(instance.uuid, []))


def _version(address: str) -> int:
    return ipaddress.ip_address(address).version


def ips(ports: Sequence[PortInfo], *, extended: bool) -> dict[str, list[dict[str, Any]]]:
    """nova's addresses: network name -> its fixed IPs; `extended` adds the
    OS-EXT-IPS type and OS-EXT-IPS-MAC mac_addr the server views show (not /ips)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for port in ports:
        if port.ip_address is None:
            continue
        entry: dict[str, Any] = {"version": _version(port.ip_address), "addr": port.ip_address}
        if extended:
            entry["OS-EXT-IPS:type"] = "fixed"
            entry["OS-EXT-IPS-MAC:mac_addr"] = port.mac_address
        found.setdefault(port.network.name, []).append(entry)
    return found


def addresses(request: Request, instance: Instance) -> dict[str, list[dict[str, Any]]]:
    """A server view's addresses."""
    return ips(ports_of(request, instance), extended=True)


def interface_attachment(port: PortInfo) -> dict[str, Any]:
    """nova's os-interface entry (from the port Neutron would show)."""
    fixed = []
    if port.ip_address is not None:
        fixed.append({"subnet_id": port.network.subnet_id, "ip_address": port.ip_address})
    return {
        "net_id": port.network.id,
        "port_id": port.id,
        "mac_addr": port.mac_address,
        "port_state": "ACTIVE",
        "fixed_ips": fixed,
    }


def nic_view(port: PortInfo) -> NicView:
    """What the agent plugs: the port, its address, its subnet and where to plug it."""
    network = port.network
    return NicView(
        port_id=port.id,
        mac_address=port.mac_address,
        network_id=network.id,
        network_name=network.name,
        ip_address=port.ip_address,
        cidr=network.cidr or None,
        gateway=network.gateway or None,
        dns_nameservers=list(network.dns_nameservers),
        mtu=network.mtu,
        vif_type=port.vif_type,
        bridge=network.bridge,
        vif_details=dict(port.vif_details),
    )
