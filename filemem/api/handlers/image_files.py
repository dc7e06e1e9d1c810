"""Checks of the files an image is registered from: regular files below [api] image_dirs."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping

from filemem.api.errors import BadRequest


def check(paths: Mapping[str, str], image_dirs: tuple[str, ...]) -> None:
    """Each named file must exist, be a regular file and lie below one of `image_dirs`."""
    for field, path in paths.items():
        _check_file(field, path)
        _check_inside(field, path, image_dirs)


def _check_file(field: str, path: str) -> None:
    """The file must exist and be a regular file (no device, directory or dangling link)."""
    try:
        info = os.stat(path)
    except OSError as exc:
        raise BadRequest(f"{field} {path}: {exc.strerror or 'cannot be read'}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise BadRequest(f"{field} {path} is not a regular file")


def _check_inside(field: str, path: str, image_dirs: tuple[str, ...]) -> None:
    """The file, symlinks resolved, must lie below one of [api] image_dirs."""
    real = os.path.realpath(path)
    for directory in image_dirs:
        base = os.path.realpath(directory)
        if os.path.commonpath([real, base]) == base:
            return
    raise BadRequest(
        f"{field} {path} is not below a directory of [api] image_dirs "
        f"({', '.join(image_dirs) or 'none set'})"
    )
