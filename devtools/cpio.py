"""A cpio "newc" writer: the format the kernel unpacks into the initramfs rootfs."""

from __future__ import annotations

import stat
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol


class Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class CpioEntry:
    """One archive member; name is relative ("bin/sh"), data is file content or symlink target."""

    name: str
    mode: int
    data: bytes = b""
    rdev_major: int = 0
    rdev_minor: int = 0


def directory(name: str, perm: int = 0o755) -> CpioEntry:
    return CpioEntry(name, stat.S_IFDIR | perm)


def regular_file(name: str, data: bytes, perm: int = 0o644) -> CpioEntry:
    return CpioEntry(name, stat.S_IFREG | perm, data)


def symlink(name: str, target: str) -> CpioEntry:
    return CpioEntry(name, stat.S_IFLNK | 0o777, target.encode())


def char_device(name: str, major: int, minor: int, perm: int = 0o600) -> CpioEntry:
    return CpioEntry(name, stat.S_IFCHR | perm, rdev_major=major, rdev_minor=minor)


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _newc_member(ino: int, entry: CpioEntry) -> bytes:
    name = entry.name.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    # uid/gid 0 and mtime 0 keep the archive reproducible; the kernel ignores devmajor/devminor.
    fields = (
        ino,
        entry.mode,
        0,  # uid
        0,  # gid
        nlink,
        0,  # mtime
        len(entry.data),
        0,  # devmajor
        0,  # devminor
        entry.rdev_major,
        entry.rdev_minor,
        len(name),
        0,  # check: only used by the "crc" variant (070702)
    )
    header = b"070701" + b"".join(b"%08X" % value for value in fields)
    head = header + name
    return head + _pad4(len(head)) + entry.data + _pad4(len(entry.data))


def write_newc(entries: Iterable[CpioEntry], out: Writable) -> None:
    """Write entries as a newc cpio archive; parents must come before their children."""
    for ino, entry in enumerate(entries, start=1):
        if entry.name.startswith("/") or not entry.name:
            raise ValueError(f"cpio member names must be relative: {entry.name!r}")
        out.write(_newc_member(ino, entry))
    out.write(_newc_member(0, CpioEntry("TRAILER!!!", 0)))
