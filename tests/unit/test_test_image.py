"""Unit tests for the test-image builder: cpio writer, cmdline, cache decisions (no downloads)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from filemem.devtools import test_image as ti


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
    ti.directory("bin"),
    ti.regular_file("bin/hello", b"hello world\n", perm=0o755),
    ti.symlink("bin/hi", "hello"),
    ti.directory("dev"),
    ti.char_device("dev/console", 5, 1),
]


def sample_archive() -> bytes:
    out = io.BytesIO()
    ti.write_newc(SAMPLE, out)
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
        ti.write_newc([ti.directory("/bin")], io.BytesIO())


def test_initramfs_layout() -> None:
    members = parse_newc(gzip_payload_of_initrd())
    names = [m.name for m in members]
    for i, name in enumerate(names):
        parent = name.rpartition("/")[0]
        assert not parent or parent in names[:i], f"{name} comes before its directory"
    by_name = {m.name: m for m in members}
    assert by_name["bin/busybox"].data == b"BUSYBOX"
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
        ti.write_newc(ti.initramfs_entries(b"BUSYBOX"), gz)
    return gzip.decompress(out.getvalue())


def test_initrd_is_reproducible(tmp_path: Path) -> None:
    ti.write_initrd(tmp_path / "a", b"BUSYBOX")
    ti.write_initrd(tmp_path / "b", b"BUSYBOX")
    assert (tmp_path / "a").read_bytes() == (tmp_path / "b").read_bytes()


def test_init_script_speaks_the_protocol() -> None:
    assert ti.INIT_SCRIPT.startswith("#!/bin/busybox sh\n")
    assert f"echo {ti.READY_LINE}\n" in ti.INIT_SCRIPT
    assert "filemem.touch_mb=" in ti.INIT_SCRIPT
    assert "filemem.poweroff=" in ti.INIT_SCRIPT


def test_init_script_parses() -> None:
    subprocess.run(["sh", "-n"], input=ti.INIT_SCRIPT.encode(), check=True)


def test_cmdline_defaults() -> None:
    image = ti.TestImage(kernel=Path("/k"), initrd=Path("/i"))
    args = image.cmdline().split()
    assert args[0] == "console=ttyS0"
    assert "filemem.touch_mb=0" in args
    assert not any(a.startswith("filemem.poweroff") for a in args)
    assert image.ready_line == "FILEMEM-READY"


def test_cmdline_touch_and_poweroff() -> None:
    image = ti.TestImage(kernel=Path("/k"), initrd=Path("/i"))
    args = image.cmdline(touch_mb=64, poweroff=True).split()
    assert "filemem.touch_mb=64" in args
    assert "filemem.poweroff=1" in args
    assert "panic=-1" in args
    assert image.touched_line(64) == "FILEMEM-TOUCHED 64"


def test_cmdline_rejects_negative_touch() -> None:
    with pytest.raises(ValueError):
        ti.TestImage(kernel=Path("/k"), initrd=Path("/i")).cmdline(touch_mb=-1)


def good_manifest() -> dict[str, object]:
    return {
        "format": ti.IMAGE_FORMAT,
        "init_sha256": ti.INIT_SHA256,
        "sha256": {ti.KERNEL_NAME: "k" * 64, ti.INITRD_NAME: "i" * 64},
    }


def test_rebuild_reason_accepts_matching_cache() -> None:
    assert ti.rebuild_reason(good_manifest(), "k" * 64, "i" * 64) is None


@pytest.mark.parametrize(
    ("manifest", "kernel", "initrd", "expected"),
    [
        (None, "k" * 64, "i" * 64, "no manifest"),
        (good_manifest(), "x" * 64, "i" * 64, "vmlinuz does not match"),
        (good_manifest(), "k" * 64, "x" * 64, "initrd.img does not match"),
        (good_manifest(), None, "i" * 64, "vmlinuz is missing"),
        (good_manifest(), "k" * 64, None, "initrd.img is missing"),
        ({**good_manifest(), "format": 0}, "k" * 64, "i" * 64, "image format"),
        ({**good_manifest(), "init_sha256": "old"}, "k" * 64, "i" * 64, "/init has changed"),
        ({"format": ti.IMAGE_FORMAT, "init_sha256": ti.INIT_SHA256}, "k", "i", "does not match"),
    ],
)
def test_rebuild_reason_rejects(
    manifest: dict[str, object] | None, kernel: str | None, initrd: str | None, expected: str
) -> None:
    reason = ti.rebuild_reason(manifest, kernel, initrd)
    assert reason is not None and expected in reason


def test_parse_kernel_package() -> None:
    output = (
        "linux-image-cloud-amd64\n"
        "  Depends: linux-image-6.1.0-56-cloud-amd64\n"
        "  Recommends: something-else\n"
    )
    assert ti.parse_kernel_package(output) == "linux-image-6.1.0-56-cloud-amd64"


def test_parse_kernel_package_without_versioned_kernel() -> None:
    with pytest.raises(ti.TestImageError):
        ti.parse_kernel_package("linux-image-cloud-amd64\n")


def write_cached_image(dest: Path) -> None:
    dest.mkdir()
    (dest / ti.KERNEL_NAME).write_bytes(b"kernel")
    (dest / ti.INITRD_NAME).write_bytes(b"initrd")
    manifest = {
        "format": ti.IMAGE_FORMAT,
        "init_sha256": ti.INIT_SHA256,
        "sha256": {
            ti.KERNEL_NAME: hashlib.sha256(b"kernel").hexdigest(),
            ti.INITRD_NAME: hashlib.sha256(b"initrd").hexdigest(),
        },
    }
    (dest / ti.MANIFEST_NAME).write_text(json.dumps(manifest))


def test_ensure_uses_valid_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dest = tmp_path / "img"
    write_cached_image(dest)

    def no_build(dest: Path, log: object) -> ti.TestImage:
        raise AssertionError("must not rebuild a valid cache")

    monkeypatch.setattr(ti, "build_test_image", no_build)
    logged: list[str] = []
    image = ti.ensure_test_image(dest, log=logged.append)
    assert image.kernel == dest / ti.KERNEL_NAME
    assert image.initrd == dest / ti.INITRD_NAME
    assert logged == [f"test image cached at {dest}"]


@pytest.mark.parametrize("force", [False, True])
def test_ensure_rebuilds_tampered_or_forced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, force: bool
) -> None:
    dest = tmp_path / "img"
    write_cached_image(dest)
    if not force:
        (dest / ti.INITRD_NAME).write_bytes(b"half-written")
    built: list[Path] = []

    def fake_build(dest: Path, log: object) -> ti.TestImage:
        built.append(dest)
        return ti.TestImage(kernel=dest / "k", initrd=dest / "i")

    monkeypatch.setattr(ti, "build_test_image", fake_build)
    ti.ensure_test_image(dest, force=force, log=lambda _: None)
    assert built == [dest]


def test_publish_is_atomic_and_world_readable(tmp_path: Path) -> None:
    digest = ti._publish(tmp_path, "file", lambda p: p.write_bytes(b"data"))
    assert digest == hashlib.sha256(b"data").hexdigest()
    assert stat.S_IMODE((tmp_path / "file").stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


def test_publish_failure_leaves_nothing(tmp_path: Path) -> None:
    def explode(path: Path) -> None:
        path.write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        ti._publish(tmp_path, "file", explode)
    assert list(tmp_path.iterdir()) == []


def test_apt_update_runs_once_after_a_failure(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], cwd: Path | None = None) -> str:
        calls.append(cmd)
        return ""

    attempts: list[int] = []

    def action() -> Path:
        attempts.append(1)
        if len(attempts) == 1:
            raise ti.TestImageError("E: Unable to locate package")
        return Path("/pkg.deb")

    monkeypatch.setattr(ti, "_run", fake_run)
    assert ti._with_apt_update(action, lambda _: None) == Path("/pkg.deb")
    assert len(attempts) == 2
    assert [c[-1] for c in calls] == ["update"]
