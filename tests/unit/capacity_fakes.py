"""A host's RAM and swap, shared by the capacity unit tests."""

from __future__ import annotations

from filemem.backing.capacity import HostRam
from filemem.common.resources import GIB, MIB

# 8 GiB of RAM, 6 GiB of it available; 2 GiB of swap, 1.5 GiB of it free.
RAM = HostRam(
    mem_total_bytes=8 * GIB,
    mem_available_bytes=6 * GIB,
    swap_total_bytes=2 * GIB,
    swap_free_bytes=1536 * MIB,
)
