"""[DEFAULT] options: host identity, memory accounting and where state lives."""

from __future__ import annotations

import socket

from oslo_config import cfg

GROUP = None

OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "host",
        default=socket.gethostname(),
        sample_default="<current hostname>",
        help="Name of this compute host; also the name of its resource provider in Placement.",
    ),
    cfg.FloatOpt(
        "ram_allocation_ratio",
        default=None,
        min=0.0,
        help="Virtual RAM to physical RAM ratio. A file-backed host must set exactly 1.0: "
        "unset counts as not 1.0 and the compute service refuses to start.",
    ),
    cfg.FloatOpt(
        "cpu_allocation_ratio",
        default=4.0,
        min=0.0,
        help="Virtual CPU to physical CPU ratio reported to Placement for VCPU.",
    ),
    cfg.IntOpt(
        "reserved_host_memory_mb",
        default=0,
        min=0,
        help="Memory (MiB) kept back from guests. On a file-backed host this is taken out of "
        "file_backed_memory and must be smaller than it; a non-zero value draws a warning.",
    ),
    cfg.IntOpt(
        "reserved_host_disk_mb",
        default=0,
        min=0,
        help="Disk (MiB) kept back from guests' disks.",
    ),
    cfg.StrOpt(
        "state_path",
        default="/var/lib/filemem",
        help="Directory for filemem's state: instance directories (overlays, console logs), "
        "cached test images, the embedded Placement database.",
    ),
    cfg.BoolOpt(
        "allow_resize_to_same_host",
        default=False,
        help="Allow a resize to run on the server's own host, as nova's option of that name. "
        "filemem resizes in place only (it has no cold migration between hosts), so with "
        "false every resize is refused with a message naming this option. `filemem up` "
        "defaults it to true.",
    ),
    cfg.IntOpt(
        "shutdown_timeout",
        default=60,
        min=0,
        help="Seconds a guest gets to shut down after an ACPI power-off before it is destroyed.",
    ),
    cfg.BoolOpt(
        "force_config_drive",
        default=False,
        help="Give every new server a config drive (nova's option of that name), as if it "
        "asked for one with config_drive true: an ISO 9660 image labelled config-2 holding "
        "nova's openstack/<version>/meta_data.json, network_data.json and user_data, "
        "attached to the guest as a read-only CD-ROM. `filemem up` defaults it to true: no "
        "metadata service runs beside it.",
    ),
]
