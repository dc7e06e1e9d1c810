"""A guest's disk as one standalone image (nova's createImage without a guest agent): the
guest is paused while its overlay and base are read, so the copy is of one moment."""

from __future__ import annotations

import logging
import os
import subprocess
from pathlib import Path

import libvirt

from filemem.exceptions import HypervisorError, InvalidInput
from filemem.virt.libvirt.errors import translated

LOG = logging.getLogger(__name__)

# Written 0600 (root's), as the overlay: a guest's disk is its owner's data.
SNAPSHOT_UMASK = 0o077


def export_disk(dom: libvirt.virDomain, overlay: Path, dest: Path) -> None:
    """Write the guest's disk (its overlay flattened with the base below it) to `dest` as
    qcow2. A running guest is paused for the copy and runs again after it, whatever happens;
    a paused or stopped one is left as it is. Raises InvalidInput when the guest has no disk
    (a kernel boot), HypervisorError when qemu-img fails (nothing is left at `dest`)."""
    if not overlay.exists():
        raise InvalidInput(f"guest {dom.UUIDString()} boots a kernel and has no disk to snapshot")
    state, _reason = dom.state()
    paused_here = state == libvirt.VIR_DOMAIN_RUNNING
    if paused_here:
        with translated(f"pausing guest {dom.UUIDString()} for its snapshot"):
            dom.suspend()
    try:
        _convert(overlay, dest)
    finally:
        if paused_here:
            with translated(f"resuming guest {dom.UUIDString()} after its snapshot"):
                dom.resume()


def _convert(overlay: Path, dest: Path) -> None:
    partial = dest.with_name(f".{dest.name}.partial")
    # -U: QEMU holds the image lock while the guest exists; its vCPUs are stopped, so reading
    # beside it is consistent. The overlay names its base's format (-F at create): no probing.
    argv = ["qemu-img", "convert", "-U", "-q", "-f", "qcow2", "-O", "qcow2"]
    result = subprocess.run(
        [*argv, str(overlay), str(partial)],
        capture_output=True,
        text=True,
        check=False,
        umask=SNAPSHOT_UMASK,
    )
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise HypervisorError("writing the snapshot of the guest's disk", result.stderr.strip())
    os.replace(partial, dest)
    LOG.info("wrote the disk of %s to %s", overlay.parent.name, dest)
