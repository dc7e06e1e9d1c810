"""[quota] options: nova's default per-project limits (a project's own quota set overrides them)."""

from __future__ import annotations

from oslo_config import cfg

GROUP = "quota"

OPTS: list[cfg.Opt] = [
    cfg.IntOpt(
        "instances",
        default=10,
        min=-1,
        help="The number of servers a project may have by default; -1 is unlimited.",
    ),
    cfg.IntOpt(
        "cores",
        default=20,
        min=-1,
        help="The number of vCPUs a project's servers may have by default; -1 is unlimited.",
    ),
    cfg.IntOpt(
        "ram",
        default=50 * 1024,
        min=-1,
        help="The MiB of memory a project's servers may have by default; -1 is unlimited.",
    ),
    cfg.IntOpt(
        "metadata_items",
        default=128,
        min=-1,
        help="The number of metadata items one server may hold by default (nova's "
        "metadata_items); -1 is unlimited.",
    ),
    cfg.BoolOpt(
        "recheck_quota",
        default=True,
        help="Count again after a create has written its servers and undo it when another "
        "API process's concurrent create used up the quota meanwhile (nova's recheck_quota).",
    ),
]
