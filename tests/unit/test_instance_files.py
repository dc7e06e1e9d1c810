"""A guest's files on its host: the overlay is made only over a checked image, readable by root
only, in a directory QEMU can search but nobody can list (issue 18 items 1, 7 and 9)."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from filemem.common.guests import Image
from filemem.common.images import ImageRefused
from filemem.virt.libvirt import instance_files


@pytest.fixture
def base(tmp_path: Path) -> Path:
    path = tmp_path / "images" / "base.raw"
    path.parent.mkdir()
    subprocess.run(["qemu-img", "create", "-q", "-f", "raw", str(path), "1M"], check=True)
    return path


@pytest.fixture
def state_path() -> Iterator[Path]:
    """make_instance_dir needs parents QEMU's user can search; pytest's tmp_path is 0700."""
    path = Path(tempfile.mkdtemp(prefix="filemem-unit-", dir="/var/tmp"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path)


def info(path: Path) -> dict[str, object]:
    out = subprocess.run(
        ["qemu-img", "info", "-U", "--output=json", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, object] = json.loads(out)
    return result


def test_overlay_is_0600_with_its_backing_format_recorded(state_path: Path, base: Path) -> None:
    workdir = state_path / "instances" / "x"
    instance_files.make_instance_dir(workdir)
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o711
    overlay = workdir / "disk.qcow2"
    instance_files.create_overlay(Image(kind="disk", disk=base, disk_format="raw"), overlay)
    assert stat.S_IMODE(overlay.stat().st_mode) == 0o600
    # The format is in the overlay's header, so neither libvirt nor QEMU probes the base.
    described = info(overlay)
    assert (described["backing-filename"], described["backing-filename-format"]) == (
        str(base),
        "raw",
    )


def test_an_instance_dir_made_before_is_made_unlistable(state_path: Path) -> None:
    workdir = state_path / "instances" / "old"
    workdir.mkdir(parents=True, mode=0o755)
    instance_files.make_instance_dir(workdir)
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o711


def test_no_overlay_over_a_disk_re_pointed_by_a_symlink(tmp_path: Path, base: Path) -> None:
    secret = tmp_path / "secret.raw"
    secret.write_bytes(b"\0" * 4096)
    base.unlink()
    base.symlink_to(secret)
    overlay = tmp_path / "disk.qcow2"
    image = Image(kind="disk", disk=base, disk_format="raw", name="img")
    with pytest.raises(ImageRefused, match=r"image img is refused: .* has moved"):
        instance_files.create_overlay(image, overlay)
    with pytest.raises(ImageRefused, match="has moved"):
        instance_files.prepare_incoming(image, overlay)
    assert not overlay.exists()


def test_no_overlay_over_a_disk_given_a_backing_file(tmp_path: Path, base: Path) -> None:
    secret = tmp_path / "secret.raw"
    secret.write_bytes(b"\0" * 4096)
    make = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(secret), str(base)]
    subprocess.run(make, check=True)
    overlay = tmp_path / "disk.qcow2"
    image = Image(kind="disk", disk=base, disk_format="qcow2", name="img")
    with pytest.raises(ImageRefused, match="backing file"):
        instance_files.create_overlay(image, overlay)
    assert not overlay.exists()


def test_incoming_kernel_guest_checks_its_files(tmp_path: Path) -> None:
    kernel = tmp_path / "vmlinuz"
    kernel.write_bytes(b"\0")
    instance_files.prepare_incoming(Image(kind="kernel", kernel=kernel), tmp_path / "disk.qcow2")
    link = tmp_path / "link"
    link.symlink_to(kernel)
    with pytest.raises(ImageRefused, match="has moved"):
        instance_files.prepare_incoming(Image(kind="kernel", kernel=link), tmp_path / "d.qcow2")
