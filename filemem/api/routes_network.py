"""Routes of the network: a server's ips and os-interface, and the Neutron view at /network."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from filemem.api.handlers import neutron, server_ips
from filemem.api.policies import network as N
from filemem.api.route import Route


def network_routes() -> tuple[Route, ...]:
    """Read-only: filemem allocates ports when it creates a server; nothing attaches more."""
    one = "/v2.1/servers/{server_id}"
    net = neutron.V2

    def view(path: str, endpoint: Callable[..., Any], public: bool = False) -> Route:
        rule = None if public else N.NETWORK_READ
        return Route("GET", path, endpoint, public=public, tag="network", rule=rule)

    return (
        Route("GET", f"{one}/ips", server_ips.list_ips, rule=N.IPS_INDEX),
        Route("GET", f"{one}/ips/{{network}}", server_ips.show_ips, rule=N.IPS_SHOW),
        Route("GET", f"{one}/os-interface", server_ips.list_interfaces, rule=N.INTERFACES_LIST),
        Route(
            "GET",
            f"{one}/os-interface/{{port_id}}",
            server_ips.show_interface,
            rule=N.INTERFACES_SHOW,
        ),
        view(neutron.PREFIX, neutron.versions, public=True),
        view(f"{neutron.PREFIX}/", neutron.versions, public=True),
        view(net, neutron.resources),
        view(f"{net}/extensions", neutron.extensions),
        view(f"{net}/networks", neutron.list_networks),
        view(f"{net}/networks/{{network_id}}", neutron.show_network),
        view(f"{net}/subnets", neutron.list_subnets),
        view(f"{net}/subnets/{{subnet_id}}", neutron.show_subnet),
        view(f"{net}/ports", neutron.list_ports),
        view(f"{net}/ports/{{port_id}}", neutron.show_port),
    )
