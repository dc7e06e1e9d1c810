"""A guest's files on its host: the instance directory and the disk image's overlay."""

from __future__ import annotations

import subprocess
from pathlib import Path

from filemem.common.guests import Image
from filemem.exceptions import ConfigError, HypervisorError, InvalidInput


def make_instance_dir(path: Path) -> None:
    """Create it, and refuse a state_path QEMU's user cannot traverse to the console log and
    overlay below it (we check rather than chmod the operator's parent directories)."""
    path.mkdir(mode=0o755, parents=True, exist_ok=True)
    for part in (path, *path.parents):
        if not part.stat().st_mode & 0o001:
            raise ConfigError(
                "[DEFAULT] state_path",
                f"{part} is not searchable by other users (mode "
                f"{oct(part.stat().st_mode & 0o777)}), so QEMU cannot reach the guest's console "
                "log and disk below it; use a state_path whose parents have o+x",
            )


def create_overlay(image: Image, overlay: Path) -> None:
    if image.disk is None or not image.disk.is_file():
        raise InvalidInput(f"disk image {image.disk} does not exist")
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
            str(image.disk.resolve()),
            str(overlay),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise HypervisorError("creating the copy-on-write overlay", result.stderr.strip())
