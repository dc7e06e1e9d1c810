"""[metadata] options: nova's metadata API, served by filemem-api on a listener of its own."""

from __future__ import annotations

from oslo_config import cfg

GROUP = "metadata"

OPTS: list[cfg.Opt] = [
    cfg.BoolOpt(
        "enabled",
        default=False,
        help="Serve nova's metadata API (/openstack/<version>/meta_data.json, "
        "/latest/meta-data/...) from filemem-api, on `listen`:`listen_port`. Requests are "
        "those of Neutron's metadata proxy: X-Instance-ID, X-Tenant-ID and "
        "X-Instance-ID-Signature, an HMAC-SHA256 of the instance id with "
        "[neutron] metadata_proxy_shared_secret, which must then be set.",
    ),
    cfg.StrOpt(
        "listen",
        default="127.0.0.1",
        help="Address the metadata API listens on (nova's [DEFAULT] metadata_listen).",
    ),
    cfg.PortOpt(
        "listen_port",
        default=8775,
        help="TCP port of the metadata API (nova's [DEFAULT] metadata_listen_port); 0 picks "
        "a free one (printed at start).",
    ),
]
