"""[DEFAULT] options of the compute agent: resource sync interval, Placement retries, metrics."""

from __future__ import annotations

from oslo_config import cfg

from filemem.exceptions import ConfigError

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
    cfg.StrOpt(
        "metrics_listen",
        default="",
        help="ADDRESS:PORT on which filemem-compute serves Prometheus metrics at /metrics "
        "(e.g. 127.0.0.1:9478). Empty: no HTTP endpoint, only metrics_file.",
    ),
    cfg.StrOpt(
        "api_endpoint",
        default="",
        help="URL of filemem-api (e.g. http://127.0.0.1:8774) whose instances this host's "
        "agent runs: it registers the service there, watches the instances assigned to this "
        "host and makes libvirt match. Several filemem-api processes on one database may be "
        "listed, comma-separated: when one is unreachable the agent moves on to the next. "
        "Empty: the agent only keeps Placement true.",
    ),
    cfg.StrOpt(
        "api_credential_file",
        default="",
        help="File holding this host's credential for filemem-api (`filemem host credential "
        "create HOST --output FILE`): with it the agent can act only for its own host's "
        "service and instances. The file must be readable by the agent and by nobody else "
        "(mode 0600 or 0400). Set this or api_token, not both; this is the one for "
        "production.",
    ),
    cfg.StrOpt(
        "api_token",
        default="",
        secret=True,
        help="Token the agent sends to filemem-api: the API's [api] admin_token, which "
        "controls the whole cloud. Kept for `filemem up` and small set-ups; a compute host "
        "should use api_credential_file instead. Set this or api_credential_file, not both.",
    ),
    cfg.IntOpt(
        "api_watch_seconds",
        default=20,
        min=1,
        max=30,
        help="Longest wait of one watch request; also the longest time before the agent "
        "notices a guest that changed by itself (powered off, crashed).",
    ),
]


def metrics_listen(value: str) -> tuple[str, int] | None:
    """[DEFAULT] metrics_listen as (address, port); None when empty. Raises ConfigError."""
    if not value:
        return None
    address, _, port = value.rpartition(":")
    if not address or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            "[DEFAULT] metrics_listen", f"{value!r} is not ADDRESS:PORT (e.g. 127.0.0.1:9478)"
        )
    return address.strip("[]"), int(port)


def api_endpoints(value: str) -> list[str]:
    """[DEFAULT] api_endpoint as its list of http(s) URLs (empty when unset). Raises
    ConfigError naming the option when an entry is not an http:// or https:// URL."""
    urls = [url.strip() for url in value.split(",") if url.strip()]
    for url in urls:
        if not url.startswith(("http://", "https://")) or len(url.split("://", 1)[1]) == 0:
            raise ConfigError(
                "[DEFAULT] api_endpoint",
                f"{url!r} is not an http:// or https:// URL (several: comma-separated)",
            )
    return urls
