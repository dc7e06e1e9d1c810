"""The guest partition around starts and deletes: made before a guest starts, removed once no
guest runs in it, both under the host's spawn lock so a start never races a removal."""

from __future__ import annotations

import fcntl
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import libvirt

from filemem.common.resources import MIB
from filemem.virt.libvirt import partition
from filemem.virt.libvirt.errors import translated
from filemem.virt.xml.domain import Domain

LOG = logging.getLogger(__name__)

# libvirt removes a stopped guest's own cgroup a moment after destroy returns.
RELEASE_WAIT_SECONDS = 2.0


@contextmanager
def spawn_lock(state_path: Path) -> Iterator[None]:
    """Capacity check and start are one step for every filemem process on this host."""
    state_path.mkdir(parents=True, exist_ok=True)
    with open(state_path / "spawn.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure(name: str | None, memory_limit_mb: int) -> None:
    """Before every start, not once: cgroups vanish at host reboot, and libvirt removes the
    partition's directories when it fails to make a guest's cgroup in them."""
    if name:
        partition.ensure_partition(name, memory_limit_mb * MIB or None)


def release_if_unused(name: str | None, conn: libvirt.virConnect) -> bool:
    """Remove partition `name` when no running domain is placed in it (call under the spawn
    lock): filemem made its cgroups in every hierarchy and leaves none behind."""
    if not name:
        return False
    path = partition.libvirt_partition_path(name)
    with translated("listing running guests"):
        running = conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
    for dom in running:
        try:
            resource = Domain.from_xml(dom.XMLDesc(0)).resource
        except libvirt.libvirtError:
            continue  # it stopped meanwhile
        if resource is not None and resource.partition == path:
            return False
    if not partition.remove_unused_partition(name, wait=RELEASE_WAIT_SECONDS):
        return False
    LOG.info("removed guest partition %s: no guest runs in it", name)
    return True
