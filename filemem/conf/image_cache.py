"""[image_cache] options of filemem-compute: the per-host cache of downloaded images (nova's)."""

from __future__ import annotations

from oslo_config import cfg

GROUP = "image_cache"

OPTS: list[cfg.Opt] = [
    cfg.IntOpt(
        "manager_interval",
        default=2400,
        min=-1,
        help="Seconds between the agent's passes over its image cache (<state_path>/_base), "
        "which remove the images no guest of this host uses any more (nova's option of that "
        "name). 0 runs a pass after every reconcile pass; -1 never removes anything.",
    ),
    cfg.IntOpt(
        "remove_unused_original_minimum_age_seconds",
        default=86400,
        min=0,
        help="An image downloaded into this host's cache and used by none of its guests is "
        "removed once it has been unused for this many seconds (nova's option of that name), "
        "so a guest booted again soon after the last one went finds it still there.",
    ),
]
