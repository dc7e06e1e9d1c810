"""[neutron] options: what filemem shares with Neutron's agents (the metadata proxy's secret)."""

from __future__ import annotations

from oslo_config import cfg

GROUP = "neutron"

OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "metadata_proxy_shared_secret",
        default="",
        secret=True,
        help="Secret shared with Neutron's metadata proxy, nova's option of that name: the "
        "proxy signs each request's X-Instance-ID with it (HMAC-SHA256) and the metadata API "
        "([metadata] enabled) refuses, with 403, a request whose signature does not match.",
    ),
]
