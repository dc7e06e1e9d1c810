"""Unit tests for the test image's initramfs: the newc cpio writer and the guest's file layout."""

from __future__ import annotations

import gzip
import io
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from devtools import cpio
from devtools import test_image as ti


@dataclass(frozen=True)
class Member:
    name: str
    mode: int
    nlink: int
    data: bytes
    rdev: tuple[int, int]


def parse_newc(blob: bytes) -> list[Member]:
    """An independent reader of the newc format, strict about magic and 4-byte alignment."""
    members: list[Member] = []
    pos = 0
    while True:
        assert blob[pos : pos + 6] == b"070701", f"bad magic at offset {pos}"
        fields = [int(blob[pos + 6 + 8 * i : pos + 14 + 8 * i], 16) for i in range(13)]
        _, mode, _, _, nlink, _, size, _, _, rmaj, rmin, namesize, check = fields
        assert check == 0
        name_end = pos + 110 + namesize
        assert blob[name_end - 1] == 0, "name must be NUL-terminated"
        name = blob[pos + 110 : name_end - 1].decode()
        data_start = name_end + (-name_end % 4)
        data = blob[data_start : data_start + size]
        pos = data_start + size + (-(data_start + size) % 4)
        if name == "TRAILER!!!":
            assert pos == len(blob), "nothing may follow the trailer"
            return members
        members.append(Member(name, mode, nlink, data, (rmaj, rmin)))


SAMPLE = [
    cpio.directory("bin"),
    cpio.regular_file("bin/hello", b"hello world\n", perm=0o755),
    cpio.symlink("bin/hi", "hello"),
    cpio.directory("dev"),
    cpio.char_device("dev/console", 5, 1),
]


def sample_archive() -> bytes:
    out = io.BytesIO()
    cpio.write_newc(SAMPLE, out)
    return out.getvalue()


def test_newc_round_trip() -> None:
    members = parse_newc(sample_archive())
    assert [m.name for m in members] == ["bin", "bin/hello", "bin/hi", "dev", "dev/console"]
    by_name = {m.name: m for m in members}
    assert by_name["bin"].mode == stat.S_IFDIR | 0o755
    assert by_name["bin"].nlink == 2
    assert by_name["bin/hello"].mode == stat.S_IFREG | 0o755
    assert by_name["bin/hello"].data == b"hello world\n"
    assert by_name["bin/hi"].mode == stat.S_IFLNK | 0o777
    assert by_name["bin/hi"].data == b"hello"
    assert by_name["dev/console"].mode == stat.S_IFCHR | 0o600
    assert by_name["dev/console"].rdev == (5, 1)
    assert by_name["dev/console"].data == b""


def test_newc_ends_with_trailer() -> None:
    blob = sample_archive()
    assert b"TRAILER!!!\0" in blob[-128:]
    assert len(blob) % 4 == 0


def test_gnu_cpio_reads_the_archive() -> None:
    listing = subprocess.run(
        ["cpio", "-t", "-v"], input=sample_archive(), capture_output=True, check=True
    ).stdout.decode()
    lines = listing.splitlines()
    assert len(lines) == 5
    assert lines[0].startswith("drwxr-xr-x") and lines[0].endswith(" bin")
    assert lines[1].startswith("-rwxr-xr-x") and " 12 " in lines[1]
    assert lines[2].startswith("lrwxrwxrwx") and lines[2].endswith("bin/hi -> hello")
    assert lines[4].startswith("crw-------") and "5,   1" in lines[4]


def test_newc_rejects_absolute_names() -> None:
    with pytest.raises(ValueError, match="relative"):
        cpio.write_newc([cpio.directory("/bin")], io.BytesIO())


def test_initramfs_layout() -> None:
    members = parse_newc(gzip_payload_of_initrd())
    names = [m.name for m in members]
    for i, name in enumerate(names):
        parent = name.rpartition("/")[0]
        assert not parent or parent in names[:i], f"{name} comes before its directory"
    by_name = {m.name: m for m in members}
    assert by_name["bin/busybox"].data == b"BUSYBOX"
    assert by_name["bin/memcheck"].data == b"MEMCHECK"
    assert by_name["bin/memcheck"].mode == stat.S_IFREG | 0o755
    assert by_name["init"].mode == stat.S_IFREG | 0o755
    assert by_name["dev/console"].rdev == (5, 1)
    assert by_name["dev/null"].rdev == (1, 3)
    for applet in ("sh", "mount", "cat", "poweroff", "head", "yes"):
        assert by_name[f"bin/{applet}"].data == b"busybox"
    for d in ("proc", "sys", "tmp", "dev"):
        assert stat.S_ISDIR(by_name[d].mode)


def gzip_payload_of_initrd() -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        cpio.write_newc(ti.initramfs_entries(b"BUSYBOX", b"MEMCHECK"), gz)
    return gzip.decompress(out.getvalue())


def test_initrd_is_reproducible(tmp_path: Path) -> None:
    ti.write_initrd(tmp_path / "a", b"BUSYBOX", b"MEMCHECK")
    ti.write_initrd(tmp_path / "b", b"BUSYBOX", b"MEMCHECK")
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()
