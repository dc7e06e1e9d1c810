"""[DEFAULT] options of the compute agent: resource sync interval, Placement retries, metrics."""

from __future__ import annotations

from oslo_config import cfg

GROUP = None

OPTS: list[cfg.Opt] = [
    cfg.IntOpt(
        "update_resources_interval",
        default=60,
        min=1,
        help="Seconds between two runs of the resource tracker (inventory, traits, allocation "
        "heal, metrics) in filemem-compute. A run with nothing changed makes no write to "
        "Placement.",
    ),
    cfg.FloatOpt(
        "placement_retry_interval",
        default=1.0,
        min=0.1,
        help="Seconds filemem-compute waits before its first retry when Placement is "
        "unavailable; the wait doubles on every further failure, up to "
        "update_resources_interval. Guests keep running meanwhile.",
    ),
    cfg.StrOpt(
        "metrics_file",
        default="",
        help="Prometheus text-format file filemem-compute rewrites (atomically) after every "
        "resource sync, e.g. for node_exporter's textfile collector. Empty means "
        "<state_path>/metrics.prom.",
    ),
]
