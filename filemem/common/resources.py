"""Placement vocabulary: resource classes, the file-backed trait, a flavor's resources."""

from __future__ import annotations

import os_resource_classes as orc
import os_traits

MIB = 1024 * 1024
GIB = 1024 * MIB

MEMORY_MB: str = orc.MEMORY_MB
VCPU: str = orc.VCPU
DISK_GB: str = orc.DISK_GB

# The trait of a host whose guest memory lives in files (os-traits' name, as nova reports it).
MEMORY_BACKING_FILE_TRAIT: str = os_traits.COMPUTE_MEM_BACKING_FILE

# The flavor extra spec nova uses for huge pages. Guest config refuses every value of it on a
# file-backed host, "small" included, so any value at all keeps the guest off such hosts.
MEM_PAGE_SIZE = "hw:mem_page_size"
# The image property nova reads beside it (filemem.common.page_size says which one wins).
IMAGE_MEM_PAGE_SIZE = "hw_mem_page_size"


def guest_resources(memory_mb: int, vcpus: int, disk_gb: int = 0) -> dict[str, int]:
    """A guest's allocation on one provider; zero amounts are left out (Placement refuses them)."""
    wanted = {MEMORY_MB: memory_mb, VCPU: vcpus, DISK_GB: disk_gb}
    return {rc: amount for rc, amount in wanted.items() if amount > 0}
