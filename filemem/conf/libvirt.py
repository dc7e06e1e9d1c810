"""[libvirt] options: the hypervisor connection and file-backed memory."""

from __future__ import annotations

from oslo_config import cfg

GROUP = "libvirt"

# One cgroup directory name below /machine: no "/" and no leading "." or "_", so "." and ".."
# cannot be spelled and the partition can never leave /machine.
PARTITION_NAME_PATTERN = r"\A(?:[A-Za-z0-9][A-Za-z0-9_.-]{0,62})?\Z"

OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "connection_uri",
        default="",
        help="libvirt URI to connect to; empty means the local system daemon for virt_type "
        "(qemu:///system).",
    ),
    cfg.StrOpt(
        "virt_type",
        default="kvm",
        choices=["kvm", "qemu", "lxc", "parallels"],
        help="Domain type. filemem drives QEMU only, so kvm (production) or qemu (TCG emulation, "
        "for hosts without usable KVM) are accepted by the startup checks; the other values "
        "exist so a nova.conf parses and is then refused with a clear reason.",
    ),
    cfg.IntOpt(
        "file_backed_memory",
        default=0,
        min=0,
        help="Capacity (MiB) of guest memory served from files in libvirt's memory_backing_dir. "
        "0 turns file-backed memory off. When on, this (not host RAM) is the MEMORY_MB total "
        "reported to Placement.",
    ),
    cfg.StrOpt(
        "file_backed_memory_allocation",
        default="immediate",
        choices=[
            (
                "immediate",
                "allocate the whole memory file when the guest starts: a full store "
                "makes the start fail cleanly instead of killing a running guest",
            ),
            (
                "ondemand",
                "allocate as the guest touches memory: faster starts and thin files; "
                "the capacity guard then keeps room for every running guest's untouched memory",
            ),
        ],
        help="How a file-backed guest's memory file is allocated.",
    ),
    cfg.IntOpt(
        "backing_store_headroom_mb",
        default=16,
        min=0,
        help="Room (MiB) the capacity guard keeps free on the backing filesystem beyond guests' "
        "memory, for filesystem metadata and rounding.",
    ),
    cfg.StrOpt(
        "qemu_conf_path",
        default="/etc/libvirt/qemu.conf",
        help="libvirt's qemu.conf, read for memory_backing_dir and the user QEMU runs as.",
    ),
    cfg.StrOpt(
        "guest_partition",
        default="",
        regex=PARTITION_NAME_PATTERN,
        help="libvirt resource partition (cgroup) that guests' QEMU processes run in, as one name "
        'below /machine: "filemem" puts guests in /machine/filemem, which filemem creates in '
        "every cgroup controller libvirt uses. 1-63 letters, digits, '.', '_' or '-', starting "
        "with a letter or digit. Empty keeps libvirt's default partition, /machine.",
    ),
    cfg.IntOpt(
        "guest_memory_limit_mb",
        default=0,
        min=0,
        help="Memory (MiB) that all guests together may take from the host: the memory cgroup "
        "limit of guest_partition, counting QEMU's own memory (measured: about 75 MiB per "
        "guest under TCG with QEMU 7.2) and the page cache of file-backed guest memory. A "
        "file-backed guest over the limit keeps running (its pages are written back and "
        "dropped); a RAM-backed guest's QEMU is OOM-killed. 0 means no limit. Needs "
        "guest_partition and the cgroup v1 memory controller.",
    ),
]

# Live migration: nova's [libvirt] live_migration_* options, same names, defaults and meaning.
LIVE_MIGRATION_DOWNTIME_MIN = 100
LIVE_MIGRATION_DOWNTIME_STEPS_MIN = 3
LIVE_MIGRATION_DOWNTIME_DELAY_MIN = 3

LIVE_MIGRATION_OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "live_migration_scheme",
        default="tcp",
        choices=["tcp", "ssh", "tls"],
        help="URI scheme for live migration: the source's libvirtd connects to "
        "qemu+<scheme>://<destination address>/system (peer to peer). tcp needs the "
        "destination libvirtd to listen on TCP; ssh and tls need their keys or certificates.",
    ),
    cfg.HostAddressOpt(
        "live_migration_inbound_addr",
        help="IP address or host name other hosts reach this host's libvirtd and QEMU on for "
        "live migration (the migration network). Unset: [DEFAULT] host. Sent to the API at "
        "every registration as migration_address.",
    ),
    cfg.IntOpt(
        "live_migration_bandwidth",
        default=0,
        min=0,
        help="Maximum bandwidth (MiB/s) of a live migration; 0 lets libvirt choose (unlimited).",
    ),
    cfg.IntOpt(
        "live_migration_downtime",
        default=500,
        min=LIVE_MIGRATION_DOWNTIME_MIN,
        help="Target maximum period of time (ms) the guest may be paused to complete the "
        f"migration. Minimum {LIVE_MIGRATION_DOWNTIME_MIN}.",
    ),
    cfg.IntOpt(
        "live_migration_downtime_steps",
        default=10,
        min=LIVE_MIGRATION_DOWNTIME_STEPS_MIN,
        help="Number of incremental steps to reach the max downtime value. Minimum "
        f"{LIVE_MIGRATION_DOWNTIME_STEPS_MIN}.",
    ),
    cfg.IntOpt(
        "live_migration_downtime_delay",
        default=75,
        min=LIVE_MIGRATION_DOWNTIME_DELAY_MIN,
        help="Time to wait, in seconds, between each step increase of the migration downtime, "
        "per GiB of guest memory (at least 2 GiB counted, as nova does). Minimum "
        f"{LIVE_MIGRATION_DOWNTIME_DELAY_MIN}.",
    ),
    cfg.IntOpt(
        "live_migration_completion_timeout",
        default=800,
        min=0,
        mutable=True,
        help="Time to wait, in seconds, for a migration to complete transferring data, per GiB "
        "of guest memory (at least 2 GiB counted). When it runs out, "
        "live_migration_timeout_action is taken. 0 means no timeout.",
    ),
    cfg.StrOpt(
        "live_migration_timeout_action",
        default="abort",
        choices=("abort", "force_complete"),
        mutable=True,
        help="What to do when live_migration_completion_timeout runs out: abort cancels the "
        "migration (the guest keeps running on the source); force_complete switches to "
        "post-copy when live_migration_permit_post_copy is set, else pauses the guest so the "
        "migration can finish.",
    ),
    cfg.BoolOpt(
        "live_migration_permit_post_copy",
        default=False,
        help="Allow switching a live migration to post-copy (the guest runs on the destination "
        "and fetches the memory it still lacks from the source) when it is forced to complete "
        "or times out with force_complete; also adds VIR_MIGRATE_POSTCOPY. Takes precedence "
        "over live_migration_permit_auto_converge.",
    ),
    cfg.BoolOpt(
        "live_migration_permit_auto_converge",
        default=False,
        help="Allow auto-converge: QEMU throttles the guest's vCPUs while a live migration does "
        "not converge (VIR_MIGRATE_AUTO_CONVERGE). Ignored when post-copy is permitted.",
    ),
]

OPTS += LIVE_MIGRATION_OPTS
