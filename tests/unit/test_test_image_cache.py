"""Unit tests for building and caching the test image without downloads (cache, apt, gcc)."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from devtools import image_inputs as inputs
from devtools import test_image as ti


def good_manifest() -> dict[str, object]:
    return {
        "format": ti.IMAGE_FORMAT,
        "init_sha256": ti.INIT_SHA256,
        "memcheck_sha256": inputs.memcheck_source_sha256(),
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
        ({**good_manifest(), "memcheck_sha256": "old"}, "k" * 64, "i" * 64, "memcheck.c has"),
        ({k: v for k, v in good_manifest().items() if k != "sha256"}, "k", "i", "does not match"),
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
    assert inputs.parse_kernel_package(output) == "linux-image-6.1.0-56-cloud-amd64"


def test_parse_kernel_package_without_versioned_kernel() -> None:
    with pytest.raises(inputs.TestImageError):
        inputs.parse_kernel_package("linux-image-cloud-amd64\n")


def write_cached_image(dest: Path) -> None:
    dest.mkdir()
    (dest / ti.KERNEL_NAME).write_bytes(b"kernel")
    (dest / ti.INITRD_NAME).write_bytes(b"initrd")
    manifest = {
        "format": ti.IMAGE_FORMAT,
        "init_sha256": ti.INIT_SHA256,
        "memcheck_sha256": inputs.memcheck_source_sha256(),
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
        assert cwd is None or cwd.is_dir()
        calls.append(cmd)
        return ""

    attempts: list[int] = []

    def action() -> Path:
        attempts.append(1)
        if len(attempts) == 1:
            raise inputs.TestImageError("E: Unable to locate package")
        return Path("/pkg.deb")

    monkeypatch.setattr(inputs, "_run", fake_run)
    assert inputs._with_apt_update(action, lambda _: None) == Path("/pkg.deb")
    assert len(attempts) == 2
    assert [c[-1] for c in calls] == ["update"]


def test_compile_memcheck_names_libc6_dev_when_the_build_fails(tmp_path: Path) -> None:
    with pytest.raises(inputs.TestImageError, match="libc6-dev") as failure:
        inputs.compile_memcheck(tmp_path, source=b"#include <no-such-header.h>\n")
    assert "no-such-header.h" in str(failure.value)


def test_compile_memcheck_without_gcc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(inputs.TestImageError, match=r"gcc is not installed.*libc6-dev"):
        inputs.compile_memcheck(tmp_path)
