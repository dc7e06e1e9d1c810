"""nova's rules for a server's addresses and interfaces (nova/policies/ips.py,
attach_interfaces.py), and filemem's for its read-only Neutron-shaped network view."""

from __future__ import annotations

from oslo_policy import policy

from filemem.api.policies.base import PROJECT_READER_OR_ADMIN, RULE_ANY, rule

IPS_INDEX = "os_compute_api:ips:index"
IPS_SHOW = "os_compute_api:ips:show"
INTERFACES_LIST = "os_compute_api:os-attach-interfaces:list"
INTERFACES_SHOW = "os_compute_api:os-attach-interfaces:show"
NETWORK_READ = "filemem:network:read"

ONE = "/servers/{server_id}"
NET = "/network/v2.0"

_rules = [
    rule(
        IPS_INDEX, PROJECT_READER_OR_ADMIN, "List IP addresses of a server", ("GET", f"{ONE}/ips")
    ),
    rule(
        IPS_SHOW,
        PROJECT_READER_OR_ADMIN,
        "Show the IP addresses of a server on one network",
        ("GET", f"{ONE}/ips/{{network_label}}"),
    ),
    rule(
        INTERFACES_LIST,
        PROJECT_READER_OR_ADMIN,
        "List port interfaces attached to a server",
        ("GET", f"{ONE}/os-interface"),
    ),
    rule(
        INTERFACES_SHOW,
        PROJECT_READER_OR_ADMIN,
        "Show details of a port interface attached to a server",
        ("GET", f"{ONE}/os-interface/{{port_id}}"),
    ),
    rule(
        NETWORK_READ,
        RULE_ANY,
        "Read the built-in network's Neutron-shaped view (networks and subnets are shared; "
        "a caller who is not an admin sees the ports of its own project only)",
        ("GET", f"{NET}/networks"),
        ("GET", f"{NET}/subnets"),
        ("GET", f"{NET}/ports"),
    ),
]


def list_rules() -> list[policy.RuleDefault]:
    return list(_rules)
