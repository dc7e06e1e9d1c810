"""The memory backing store: where guests' memory files live and how much room it really has."""

from filemem.backing.capacity import (
    check_guest_fits,
    effective_capacity_mb,
    format_mib,
    promised_bytes,
    room_for_new_guest,
    store_findings,
)
from filemem.backing.store import (
    StoreFacts,
    all_memory_files,
    effective_memory_backing_dir,
    guest_memory_dir,
    guest_memory_file,
    inspect_store,
    qemu_user,
    read_qemu_conf,
)
from filemem.common.resources import MIB

__all__ = [
    "MIB",
    "StoreFacts",
    "all_memory_files",
    "check_guest_fits",
    "effective_capacity_mb",
    "effective_memory_backing_dir",
    "format_mib",
    "guest_memory_dir",
    "guest_memory_file",
    "inspect_store",
    "promised_bytes",
    "qemu_user",
    "read_qemu_conf",
    "room_for_new_guest",
    "store_findings",
]
