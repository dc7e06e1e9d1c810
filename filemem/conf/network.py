"""[network] options: the built-in network every guest of a host (or a flat L2 segment) shares."""

from __future__ import annotations

from oslo_config import cfg

GROUP = "network"

OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "driver",
        default="builtin",
        choices=[
            ("builtin", "a Linux bridge and dnsmasq that filemem sets up and supervises itself"),
            ("none", "no networking: servers must be created with networks 'none'"),
        ],
        help="Where guests' ports come from. The API allocates ports and addresses; each "
        "compute agent plugs them.",
    ),
    cfg.StrOpt(
        "name",
        default="private",
        help="Name of the built-in network, as `openstack network list` and a server's "
        "`addresses` show it.",
    ),
    cfg.StrOpt(
        "network_id",
        default="7b1d1a58-8c64-4e4f-9c1b-6f3b2f1e0a01",
        help="UUID of the built-in network (what `--nic net-id=` and networks [{uuid}] name). "
        "The same on every host and API of one cloud.",
    ),
    cfg.StrOpt(
        "cidr",
        default="10.98.0.0/24",
        help="IPv4 subnet of the built-in network. The first address is the gateway (the "
        "bridge's own address) unless `gateway` says otherwise.",
    ),
    cfg.StrOpt(
        "gateway",
        default=None,
        help="Gateway address inside `cidr` (default: the subnet's first address).",
    ),
    cfg.ListOpt(
        "dns_nameservers",
        default=[],
        help="DNS servers handed to guests by DHCP and the config drive (none by default).",
    ),
    cfg.IntOpt(
        "mtu",
        default=1500,
        min=576,
        max=9000,
        help="MTU of the bridge and of the guests' interfaces.",
    ),
    cfg.StrOpt(
        "bridge",
        default="fmguest0",
        regex=r"^[A-Za-z0-9_.-]{1,15}$",
        help="Name of the Linux bridge the agent creates and plugs guests into (at most 15 "
        "characters, a Linux interface name). Not fmbr<k>: scripts/cloud names its host "
        "links so.",
    ),
    cfg.StrOpt(
        "nat_interface",
        default=None,
        help="Host interface to masquerade guests' traffic through (off when unset): guests "
        "then reach what the host reaches.",
    ),
]
