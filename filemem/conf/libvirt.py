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
