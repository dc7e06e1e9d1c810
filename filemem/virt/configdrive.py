"""The config drive: nova's metadata files in an ISO 9660 image labelled config-2 (pycdlib)."""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

import pycdlib

from filemem.exceptions import InvalidInput

# What cloud-init and cloudbase-init look for (nova's genisoimage -V config-2).
VOLUME_LABEL = "config-2"
# nova's name for the file in the instance directory.
FILE_NAME = "disk.config"
# It holds the user data (often secrets): root's only, as the overlay; libvirt's DAC gives it
# to QEMU's user while the guest runs.
CONFIG_DRIVE_MODE = 0o600


def _check_path(name: str) -> PurePosixPath:
    """A relative path of plain names: nothing in it may climb out or be empty."""
    # The raw parts: PurePosixPath would quietly fold "a//b" and "a/./b".
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise InvalidInput(f"config drive path {name!r} is not a plain relative path")
    return PurePosixPath(name)


def build_iso(files: Mapping[str, bytes]) -> bytes:
    """The ISO image of `files` (relative path -> content): ISO 9660 level 4 names as given
    (nova relaxes them the same way: -l -allow-lowercase -allow-multidot), with Joliet and
    Rock Ridge, as nova's genisoimage -J -r does."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=4, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_LABEL)
    made: set[PurePosixPath] = set()
    for name in sorted(files):
        path = _check_path(name)
        for parent in reversed(path.parents[:-1]):
            if parent not in made:
                iso_path = f"/{parent}"
                iso.add_directory(iso_path, rr_name=parent.name, joliet_path=iso_path)
                made.add(parent)
        data = files[name]
        iso_path = f"/{path}"
        iso.add_fp(io.BytesIO(data), len(data), iso_path, rr_name=path.name, joliet_path=iso_path)
    out = io.BytesIO()
    iso.write_fp(out)
    iso.close()
    return out.getvalue()


def write_config_drive(files: Mapping[str, bytes], path: Path) -> None:
    """Write the image to `path` whole or not at all (a temp file in its directory, replaced)."""
    image = build_iso(files)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), CONFIG_DRIVE_MODE)
            handle.write(image)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
