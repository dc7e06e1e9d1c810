"""What a libvirt domain says of a guest (power state, memory, memory file, owner), and the
driver's small helpers on a domain."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import libvirt

from filemem.backing import store
from filemem.common.guests import GuestInfo, PowerState
from filemem.virt import guest_config
from filemem.virt.libvirt.errors import translated
from filemem.virt.xml.domain import Domain

LOG = logging.getLogger(__name__)

POWER_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: PowerState.NOSTATE,
    libvirt.VIR_DOMAIN_RUNNING: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: PowerState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_SHUTOFF: PowerState.SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: PowerState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: PowerState.SUSPENDED,
}


def describe(dom: libvirt.virDomain, backing_dir: Callable[[], Path]) -> tuple[GuestInfo, bool]:
    """The guest's state, and whether filemem defined it (it carries our metadata).
    `backing_dir` is read only for a running file-backed guest (it parses qemu.conf)."""
    with translated("reading guest state"):
        state, _reason = dom.state()
        xml = dom.XMLDesc(0)
        domain_id = dom.ID() if state != libvirt.VIR_DOMAIN_SHUTOFF else -1
        managed_save = state == libvirt.VIR_DOMAIN_SHUTOFF and bool(dom.hasManagedSaveImage(0))
    parsed = Domain.from_xml(xml)
    file_backed = guest_config.is_file_backed(parsed)
    memory_file = None
    if file_backed and domain_id > 0:
        memory_file = store.guest_memory_file(backing_dir(), domain_id)
    info = GuestInfo(
        uuid=dom.UUIDString(),
        name=dom.name(),
        domain_id=domain_id if domain_id > 0 else None,
        power_state=POWER_STATES.get(state, PowerState.NOSTATE),
        memory_mb=guest_config.memory_mb(parsed),
        vcpus=parsed.vcpu or 0,
        file_backed=file_backed,
        memory_file=memory_file,
        owner=parsed.metadata.owner if parsed.metadata else None,
        managed_save=managed_save,
    )
    return info, parsed.metadata is not None


def is_active(dom: libvirt.virDomain) -> bool:
    """Whether the domain runs; False for one undefined meanwhile."""
    try:
        return bool(dom.isActive())
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return False
        raise


def owner_of(domain: Domain) -> str:
    """Who reconciles the guest: its metadata's owner ("api" when it names none)."""
    return (domain.metadata.owner if domain.metadata else None) or "api"


def undefine_quietly(dom: libvirt.virDomain, flags: int) -> None:
    """Undefine a guest that failed to start; a failure to do so is only logged."""
    try:
        dom.undefineFlags(flags)
    except libvirt.libvirtError as exc:
        LOG.warning("could not undefine failed guest %s: %s", dom.name(), exc)
