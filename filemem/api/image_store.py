"""Where the API keeps uploaded images' bytes: <state_path>/image-store/<id>, written while
they stream in, hashed as glance does (md5 checksum, sha512 os_hash_value) and inspected
before the image may become active."""

from __future__ import annotations

import errno
import hashlib
import os
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filemem.common import images

HASH_ALGO = "sha512"


class ImageTooLarge(Exception):
    """More bytes than [api] image_size_cap."""


class StoreFull(Exception):
    """The store's file system has no room left (ENOSPC, EDQUOT)."""


@dataclass(frozen=True)
class Stored:
    path: Path
    size: int
    checksum: str
    os_hash_value: str
    virtual_size: int | None


def path_of(directory: Path, image_id: str) -> Path:
    """The stored file of an image: its id must be a UUID, so it cannot name another place."""
    return directory / str(uuidlib.UUID(image_id))


def remove(directory: Path, image_id: str) -> None:
    path_of(directory, image_id).unlink(missing_ok=True)


class Writer:
    """One upload: bytes to a temporary file beside the final one (0600), hashed on the way;
    `finish` inspects it and renames it into place, `abort` deletes it."""

    def __init__(self, directory: Path, image_id: str, cap: int) -> None:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.final = path_of(directory, image_id)
        self.partial = self.final.with_name(f"{self.final.name}.{uuidlib.uuid4().hex}.part")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        self._fd = os.open(self.partial, flags, 0o600)
        self._cap = cap
        self.size = 0
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha = hashlib.new(HASH_ALGO)

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self._cap:
            raise ImageTooLarge(f"Image exceeds the storage quota: more than {self._cap} bytes")
        self._md5.update(data)
        self._sha.update(data)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreFull("Image storage media is full: no room left for the image") from exc
            raise

    def finish(self, disk_format: str) -> Stored:
        """Flush, inspect as `disk_format` (ImageRefused if it is not a plain image of that
        format), then move into place."""
        try:
            os.fsync(self._fd)
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise StoreFull("Image storage media is full: no room left for the image") from exc
            raise
        self._close()
        info: dict[str, Any] = images.inspect_disk(str(self.partial), disk_format)
        os.replace(self.partial, self.final)
        virtual = info.get("virtual-size")
        return Stored(
            path=self.final,
            size=self.size,
            checksum=self._md5.hexdigest(),
            os_hash_value=self._sha.hexdigest(),
            virtual_size=virtual if isinstance(virtual, int) else None,
        )

    def abort(self) -> None:
        self._close()
        self.partial.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
