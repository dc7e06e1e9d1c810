"""This host's cache of images uploaded to the API (nova's _base): <state_path>/_base/<sha512>,
downloaded through the image API, checked against the image's size and os_hash_value while it
is written (under a temporary name, renamed when whole and inspected), shared as the backing
file of every guest booted from it, and removed once unused for
[image_cache] remove_unused_original_minimum_age_seconds."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import logging
import os
import re
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from typing import IO

from filemem.common import images
from filemem.common.guests import Image
from filemem.exceptions import FilememError

LOG = logging.getLogger(__name__)

BASE_DIR = "_base"
HASH_ALGO = "sha512"
_HEX512 = re.compile(r"^[0-9a-f]{128}$")
# Searchable and readable by QEMU's user: a base is the read-only backing file of overlays.
DIR_MODE = 0o755
FILE_MODE = 0o644
PARTIAL = ".part"

# image id -> the data, as a context manager (AgentApiClient.download_image).
Fetch = Callable[[str], contextlib.AbstractContextManager[Iterable[bytes]]]


class ImageDownloadFailed(FilememError):
    """The downloaded data is not the image the API described (size, hash, format)."""


class ImageCacheFull(FilememError):
    """No room left for an image in the cache's file system."""


def base_name(image: Image) -> str:
    """The cached file's name: the image's sha512, so the name is what the content must be."""
    value = (image.os_hash_value or "").lower()
    if image.os_hash_algo != HASH_ALGO or not _HEX512.match(value):
        raise ImageDownloadFailed(
            f"image {image.image_id} has no {HASH_ALGO} hash to check a download against "
            f"(os_hash_algo {image.os_hash_algo!r})"
        )
    return value


class ImageCache:
    """Thread-safe: one download per image at a time, the others wait for it and share it."""

    def __init__(
        self,
        directory: Path,
        fetch: Fetch,
        min_age: float = 86400.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = Path(os.path.realpath(directory))
        self._fetch = fetch
        self.min_age = min_age
        self._clock = clock
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self.downloads = 0

    def local(self, image: Image) -> Image:
        """`image` with its disk on this host: an upload's cached base, else as it is."""
        if image.source != "upload":
            return image
        return dataclasses.replace(image, disk=self.ensure(image))

    def _lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(name, threading.Lock())

    def ensure(self, image: Image) -> Path:
        """The cached file of `image`, downloaded first when it is not here."""
        name = base_name(image)
        final = self.directory / name
        with self._lock(name):
            if final.is_file():
                os.utime(final)  # last used now: the cleanup's age counts from here
                return final
            self._download(image, final)
            return final

    def _download(self, image: Image, final: Path) -> None:
        self.directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        partial = final.with_name(f"{final.name}.{uuidlib.uuid4().hex}{PARTIAL}")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        LOG.info("downloading image %s into %s", image.image_id, final)
        try:
            fd = os.open(partial, flags, FILE_MODE)
            os.fchmod(fd, FILE_MODE)  # whatever the umask
            with os.fdopen(fd, "wb") as out:
                self._copy(image, out)
            images.inspect_disk(str(partial), image.disk_format)
            os.replace(partial, final)
            self.downloads += 1
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise ImageCacheFull(
                    f"image {image.image_id}: the image cache {self.directory} is full: {exc}"
                ) from exc
            raise ImageDownloadFailed(
                f"image {image.image_id}: writing {self.directory}: {exc}"
            ) from exc
        finally:
            partial.unlink(missing_ok=True)

    def _copy(self, image: Image, out: IO[bytes]) -> None:
        """The data into `out`, checked against size and hash on the way."""
        digest, size, expected = hashlib.sha512(), 0, image.size
        with self._fetch(str(image.image_id)) as chunks:
            for chunk in chunks:
                size += len(chunk)
                if expected is not None and size > expected:
                    raise ImageDownloadFailed(
                        f"image {image.image_id}: the download is longer than its {expected} bytes"
                    )
                digest.update(chunk)
                out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
        if expected is not None and size != expected:
            raise ImageDownloadFailed(
                f"image {image.image_id}: the download is truncated: {size} of {expected} bytes"
            )
        if digest.hexdigest() != base_name(image):
            raise ImageDownloadFailed(
                f"image {image.image_id}: the download is corrupt: its {HASH_ALGO} is not the "
                "image's os_hash_value"
            )

    def clean(self, in_use: Collection[str]) -> list[str]:
        """Remove bases no guest uses (names not in `in_use`) unused for min_age seconds, and
        partial files as old (left by a crash); the bases in use are marked used now."""
        if not self.directory.is_dir():
            return []
        now, removed = self._clock(), []
        for entry in self.directory.iterdir():
            name = entry.name
            if name in in_use:
                os.utime(entry, (now, now))
                continue
            with self._lock(name.split(".")[0]):
                try:
                    age = now - entry.lstat().st_mtime
                    if age >= self.min_age and (entry.is_file() or entry.is_symlink()):
                        entry.unlink()
                        removed.append(name)
                except FileNotFoundError:
                    continue
        if removed:
            LOG.info("image cache: removed %d unused image(s): %s", len(removed), removed)
        return removed


def in_use(instance_images: Iterable[Image]) -> set[str]:
    """The base names the given guests' images need."""
    names = set()
    for image in instance_images:
        if image.source == "upload":
            with contextlib.suppress(ImageDownloadFailed):
                names.add(base_name(image))
    return names


def backing_names(overlays: Iterable[Path], directory: Path) -> set[str]:
    """The cache entries these qcow2 overlays are backed by, read from their headers (no
    qemu-img): a guest whose image was deleted from the API still needs its base."""
    names = set()
    for overlay in overlays:
        with contextlib.suppress(OSError, ValueError):
            with open(overlay, "rb") as handle:
                header = handle.read(20)
                if len(header) < 20 or header[:4] != b"QFI\xfb":
                    continue
                offset, size = int.from_bytes(header[8:16]), int.from_bytes(header[16:20])
                if not offset or size > 4096:
                    continue
                handle.seek(offset)
                backing = Path(handle.read(size).decode())
            if backing.parent == directory:
                names.add(backing.name)
    return names
