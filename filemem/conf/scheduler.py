"""[scheduler] options: how filemem-api picks hosts and claims them in Placement."""

from __future__ import annotations

from oslo_config import cfg

GROUP = "scheduler"

OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "strategy",
        default="cache",
        choices=[
            (
                "cache",
                "pick from a host-state cache refreshed from Placement, claim directly; "
                "stays fast with thousands of hosts",
            ),
            (
                "placement",
                "ask Placement for allocation candidates on every request; exact, "
                "but its cost grows with the number of hosts (~2 s at 10,000)",
            ),
        ],
        help="How hosts are found. Either way the claim is a Placement allocation, so "
        "Placement refuses whatever does not fit and the next host is tried.",
    ),
    cfg.FloatOpt(
        "refresh_interval",
        default=60.0,
        min=1.0,
        help="Seconds between two full reads of every host's capacity and usage from "
        "Placement (strategy cache; done in the background) and between two reads of the "
        "compute services. A refused claim re-reads that host at once, and a request is "
        "never refused on data older than itself.",
    ),
    cfg.IntOpt(
        "max_attempts",
        default=10,
        min=1,
        help="Claims Placement may refuse (other schedulers got there first) before a "
        "request fails with no valid host.",
    ),
    cfg.IntOpt(
        "host_subset_size",
        default=1,
        min=1,
        help="Pick at random among this many best-weighed hosts. More than 1 makes several "
        "API processes (each with its own cache) collide less on the same host.",
    ),
    cfg.IntOpt(
        "max_placement_results",
        default=1000,
        min=1,
        help="limit of GET /allocation_candidates with strategy placement.",
    ),
    cfg.BoolOpt(
        "batch_claims",
        default=True,
        help="Claim the servers of one multi-create request together in one Placement "
        "POST /allocations (all or none; strategy cache) instead of one claim each.",
    ),
    cfg.FloatOpt(
        "free_memory_weight_multiplier",
        default=1.0,
        help="Weight of free MEMORY_MB: positive spreads guests over hosts, negative stacks "
        "them on the fullest host that fits.",
    ),
]
