"""A guest's files on its host: the instance directory and the disk image's overlay."""

from __future__ import annotations

import subprocess
from pathlib import Path

from filemem.common import images
from filemem.common.guests import Image
from filemem.exceptions import ConfigError, HypervisorError, InvalidInput

# Searchable, not listable, by QEMU's user: it opens console.log and disk.qcow2 by name.
INSTANCE_DIR_MODE = 0o711
# The overlay is created 0600 (root's): libvirt's DAC (dynamic_ownership) chowns it to QEMU's
# user while the guest runs and back after, so no other local user can read a guest's disk.
OVERLAY_UMASK = 0o077


def make_instance_dir(path: Path) -> None:
    """Create it, and refuse a state_path QEMU's user cannot traverse to the console log and
    overlay below it (we check rather than chmod the operator's parent directories)."""
    path.mkdir(mode=INSTANCE_DIR_MODE, parents=True, exist_ok=True)
    # mkdir's mode is cut by the umask and does not apply to a directory made before.
    path.chmod(INSTANCE_DIR_MODE)
    for part in (path, *path.parents):
        if not part.stat().st_mode & 0o001:
            raise ConfigError(
                "[DEFAULT] state_path",
                f"{part} is not searchable by other users (mode "
                f"{oct(part.stat().st_mode & 0o777)}), so QEMU cannot reach the guest's console "
                "log and disk below it; use a state_path whose parents have o+x",
            )


def create_overlay(image: Image, overlay: Path) -> None:
    """A qcow2 overlay over the image's disk, checked first (filemem.common.images.check_image):
    the disk's stored path as it is (resolving it again would follow a link put there since),
    its format given with -F so neither qemu-img nor libvirt ever probes it."""
    if image.disk is None:
        raise InvalidInput(f"disk image {image.name} has no disk file")
    images.check_image(image)
    result = subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-F",
            image.disk_format,
            "-b",
            str(image.disk),
            str(overlay),
        ],
        capture_output=True,
        text=True,
        check=False,
        umask=OVERLAY_UMASK,
    )
    if result.returncode != 0:
        raise HypervisorError("creating the copy-on-write overlay", result.stderr.strip())


def prepare_incoming(image: Image, overlay: Path) -> None:
    """Before a guest migrates in: the image's files here are checked as at a spawn (the guest
    will use this host's copies), and a disk image gets the overlay the source's top layer is
    copied into."""
    if image.kind == "disk" and not overlay.exists():
        create_overlay(image, overlay)  # checks the image first
    else:
        images.check_image(image)
