"""Safety checks of the files a guest boots from, shared by image registration and spawn.

A disk image is a file QEMU parses: a qcow2 header can name a backing file or an external
data file anywhere on the host, and a file declared raw but holding a qcow2 header is read as
qcow2 by anything that probes. So a disk image must be a plain raw or qcow2 file, of the format
it was declared as, with no backing file and no data file; each check happens at registration
(filemem.api.handlers.image_files) and again on the agent before every spawn, rebuild and
incoming migration (the file may have changed since). Two independent readers agree on it, as
in nova: oslo.utils' format_inspector (pure Python, reads only headers, never opens a file the
image names) and `qemu-img info -f <declared>` under resource limits (QEMU's own parser).

Paths are stored resolved (realpath) at registration; at spawn a path must still be its own
realpath (no symlink anywhere on it any more) and a regular file, opened with O_NOFOLLOW.
"""

from __future__ import annotations

import json
import os
import stat
from typing import IO, Any

from oslo_concurrency import processutils
from oslo_utils.imageutils import format_inspector

from filemem.common.guests import Image
from filemem.exceptions import InvalidInput

FORMATS = ("raw", "qcow2")
# Content a raw-declared disk may hold: QEMU reads it as raw bytes all the same (a partitioned
# disk, an ISO 9660 file system), as nova's deep inspection allows.
RAW_CONTENT = ("raw", "gpt", "iso")
# nova's QEMU_IMG_LIMITS: a crafted header must not make qemu-img eat the host's memory or CPU.
QEMU_IMG_LIMITS = processutils.ProcessLimits(cpu_time=30, address_space=1024 * 1024 * 1024)
QEMU_IMG_TIMEOUT = 60
CHUNK = 64 * 1024


class ImageRefused(InvalidInput):
    """An image file is unsafe to give a guest; the message names the file and the reason."""


def resolve(path: str) -> str:
    """The path with every symlink resolved: what is stored, so a link re-pointed later
    changes nothing (and is refused at spawn, see check_unmoved)."""
    return os.path.realpath(path)


def open_regular(path: str) -> IO[bytes]:
    """Open for reading, refusing a symlink as the last component and anything not a regular
    file (a FIFO would block, a device is a host disk); O_NONBLOCK so a FIFO cannot hang open."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ImageRefused(f"{path}: {exc.strerror or 'cannot be opened'}") from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ImageRefused(f"{path} is not a regular file")
    return os.fdopen(fd, "rb")


def check_unmoved(path: str) -> None:
    """At spawn: the stored (resolved) path must still resolve to itself, so no component has
    been replaced by a symlink since registration, and be a regular file."""
    real = os.path.realpath(path)
    if real != path:
        raise ImageRefused(
            f"{path} has moved: it now resolves to {real} (a symlink was put on its path "
            "since it was registered); register the image again"
        )
    open_regular(path).close()


def inspect_disk(path: str, declared: str) -> dict[str, Any]:
    """Refuse a disk image that is not a plain `declared` (raw or qcow2) file: another format,
    content of another format than declared, a backing file or an external data file. Returns
    what `qemu-img info` said of it (its virtual-size)."""
    if declared not in FORMATS:
        raise ImageRefused(f"{path}: disk format {declared!r} is not one of {', '.join(FORMATS)}")
    with open_regular(path) as source:
        inspector = _detect(path, source)
    detected = str(inspector.NAME)
    if detected != declared and not (declared == "raw" and detected in RAW_CONTENT):
        raise ImageRefused(f"{path} is declared {declared} but its content is {detected}")
    try:
        # qcow2: no backing file, no data file, no unknown incompatible feature.
        inspector.safety_check()
    except format_inspector.SafetyCheckFailed as exc:
        reasons = "; ".join(str(failure) for failure in exc.failures.values())
        raise ImageRefused(f"{path} is refused: {reasons}") from exc
    except format_inspector.ImageFormatError as exc:
        raise ImageRefused(f"{path} is not a valid {detected} image: {exc}") from exc
    info = qemu_img_info(path, declared)
    _check_qemu_img_info(path, declared, info)
    return info


def _detect(path: str, source: IO[bytes]) -> format_inspector.FileInspector:
    """The format the content really has, read by format_inspector (headers only)."""
    wrapper = format_inspector.InspectWrapper(source)
    try:
        while wrapper.read(CHUNK) and wrapper.format is None:
            pass
        wrapper.close()
        inspector = wrapper.format
    except format_inspector.ImageFormatError as exc:
        raise ImageRefused(f"{path} is not a valid disk image: {exc}") from exc
    finally:
        wrapper.close()
    if inspector is None:
        raise ImageRefused(f"{path}: its format could not be determined")
    return inspector


def qemu_img_info(path: str, declared: str) -> dict[str, Any]:
    """`qemu-img info` of the image alone (never its backing chain), with the format given so
    qemu-img does not probe, under nova's limits and a timeout."""
    try:
        out, _err = processutils.execute(
            "qemu-img",
            "info",
            "--output=json",
            "--force-share",
            "-f",
            declared,
            path,
            prlimit=QEMU_IMG_LIMITS,
            timeout=QEMU_IMG_TIMEOUT,
            env_variables={"LC_ALL": "C", "LANG": "C"},
        )
    except processutils.ProcessExecutionError as exc:
        detail = (exc.stderr or exc.description or "").strip()
        raise ImageRefused(f"{path}: qemu-img cannot read it as {declared}: {detail}") from exc
    info = json.loads(out)
    if not isinstance(info, dict):
        raise ImageRefused(f"{path}: qemu-img info answered {out[:200]!r}")
    return info


def _check_qemu_img_info(path: str, declared: str, info: dict[str, Any]) -> None:
    if info.get("format") != declared:
        raise ImageRefused(f"{path}: qemu-img reads it as {info.get('format')}, not {declared}")
    backing = info.get("backing-filename") or info.get("full-backing-filename")
    if backing:
        raise ImageRefused(f"{path} has a backing file ({backing}); images may have none")
    data = (info.get("format-specific") or {}).get("data") or {}
    if data.get("data-file"):
        raise ImageRefused(f"{path} has an external data file ({data['data-file']})")


def check_image(image: Image) -> None:
    """On the agent, before a guest uses `image`: every file it names is still where it was
    registered (resolved, regular), and a disk image passes inspect_disk again. The error
    names the image, so the server's fault says which one was refused."""
    files = {"kernel": image.kernel, "initrd": image.initrd, "disk": image.disk}
    try:
        for path in (str(p) for p in files.values() if p is not None):
            check_unmoved(path)
        if image.kind == "disk":
            if image.disk is None:
                raise ImageRefused("a disk image without a disk file")
            inspect_disk(str(image.disk), image.disk_format)
    except ImageRefused as exc:
        raise ImageRefused(f"image {image.name or '(unnamed)'} is refused: {exc}") from exc


def is_inside(path: str, directories: tuple[str, ...]) -> bool:
    """Whether resolved `path` lies below one of `directories` (each resolved too)."""
    for directory in directories:
        base = os.path.realpath(directory)
        if os.path.commonpath([path, base]) == base:
            return True
    return False
