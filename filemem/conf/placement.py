"""[placement] options: where Placement lives, how to authenticate, microversion and retries."""

from __future__ import annotations

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

GROUP = "placement"

DEFAULT_TIMEOUT = 30

_OWN_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "endpoint",
        default="",
        help="URL of a standalone Placement service, e.g. http://127.0.0.1:8778. Empty runs "
        "Placement embedded in this process, its SQLite database under [DEFAULT] state_path. "
        "With auth_type set and no endpoint, the Keystone service catalog is asked.",
    ),
    cfg.StrOpt(
        "token",
        default="admin",
        secret=True,
        help="Static token sent as X-Auth-Token to a standalone Placement running with "
        "[api] auth_strategy = noauth2. Ignored when auth_type is set.",
    ),
    cfg.StrOpt(
        "microversion",
        default="1.39",
        regex=r"^1\.\d+$",
        help="Placement API microversion sent on every request. At least 1.38 (consumer types, "
        "consumer generations, forbidden traits).",
    ),
    cfg.IntOpt(
        "max_retries",
        default=8,
        min=0,
        help="How often a write is retried after a generation conflict (another writer "
        "changed the provider or consumer first), with exponential backoff and jitter.",
    ),
    cfg.StrOpt(
        "interface",
        default="internal",
        choices=["public", "internal", "admin"],
        help="Catalog interface used to find Placement when auth_type is set and endpoint "
        "is empty.",
    ),
    cfg.StrOpt(
        "region_name",
        help="Catalog region used to find Placement when auth_type is set and endpoint is empty.",
    ),
]


def _keystoneauth_opts() -> list[cfg.Opt]:
    # Taken as plain option lists (not register_*_conf_options) so the group registers like
    # every other filemem group; plugin-specific options are registered by keystoneauth itself
    # when the plugin is loaded.
    session_opts = ks_loading.get_session_conf_options()
    cfg.set_defaults(session_opts, timeout=DEFAULT_TIMEOUT)
    return list(ks_loading.get_auth_common_conf_options()) + list(session_opts)


OPTS: list[cfg.Opt] = _OWN_OPTS + _keystoneauth_opts()
