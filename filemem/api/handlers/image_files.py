"""Checks of the files an image is registered from: safe regular files below [api] image_dirs."""

from __future__ import annotations

from collections.abc import Mapping

from filemem.api.errors import BadRequest
from filemem.common import images
from filemem.common.images import ImageRefused


def check(
    paths: Mapping[str, str], image_dirs: tuple[str, ...], disk_format: str | None
) -> dict[str, str]:
    """Each named file, symlinks resolved, must be a regular file below one of `image_dirs`,
    and a disk a plain image of `disk_format` (filemem.common.images.inspect_disk). Returns the
    resolved paths, which are what is stored: a link re-pointed later changes nothing."""
    resolved = {}
    for field, path in paths.items():
        real = images.resolve(path)
        if not images.is_inside(real, image_dirs):
            raise BadRequest(
                f"{field} {path} is not below a directory of [api] image_dirs "
                f"({', '.join(image_dirs) or 'none set'})"
            )
        try:
            if field == "disk_path":
                images.inspect_disk(real, disk_format or "qcow2")
            else:
                images.open_regular(real).close()
        except ImageRefused as exc:
            raise BadRequest(f"{field} {path}: {_reason(exc, real)}") from exc
        resolved[field] = real
    return resolved


def _reason(exc: ImageRefused, real: str) -> str:
    """The inspector's message without the path it starts with (the field names it)."""
    message = str(exc)
    return message[len(real) :].lstrip(": ") if message.startswith(real) else message
