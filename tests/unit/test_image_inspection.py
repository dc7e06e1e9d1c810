"""filemem.common.images on real files made by qemu-img: the attacks a disk image can carry."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from filemem.common import images
from filemem.common.guests import Image
from filemem.common.images import ImageRefused


def qemu_img(*args: str) -> None:
    subprocess.run(["qemu-img", "create", "-q", *args], check=True, capture_output=True)


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    """A host file no image may reach."""
    path = tmp_path / "outside" / "secret.raw"
    path.parent.mkdir()
    path.write_bytes(b"secret" * 1000)
    return path


@pytest.fixture
def dirs(tmp_path: Path) -> Path:
    path = tmp_path / "images"
    path.mkdir()
    return path


def test_plain_raw_and_qcow2_pass(dirs: Path) -> None:
    qemu_img("-f", "raw", str(dirs / "a.raw"), "1M")
    qemu_img("-f", "qcow2", str(dirs / "a.qcow2"), "1M")
    images.inspect_disk(str(dirs / "a.raw"), "raw")
    images.inspect_disk(str(dirs / "a.qcow2"), "qcow2")
    images.check_image(Image(kind="disk", disk=dirs / "a.qcow2", disk_format="qcow2"))


def test_qcow2_with_a_backing_file_is_refused(dirs: Path, secret: Path) -> None:
    evil = dirs / "evil.qcow2"
    qemu_img("-f", "qcow2", "-F", "raw", "-b", str(secret), str(evil))
    with pytest.raises(ImageRefused, match="backing file"):
        images.inspect_disk(str(evil), "qcow2")


def test_qemu_img_info_sees_the_backing_file_too(dirs: Path, secret: Path) -> None:
    """The second reader on its own: qemu-img's answer names the backing file, which the
    check refuses even if the header inspection were fooled."""
    evil = dirs / "evil.qcow2"
    qemu_img("-f", "qcow2", "-F", "raw", "-b", str(secret), str(evil))
    info = images.qemu_img_info(str(evil), "qcow2")
    with pytest.raises(ImageRefused, match="backing file"):
        images._check_qemu_img_info(str(evil), "qcow2", info)


def test_qcow2_with_an_external_data_file_is_refused(dirs: Path, secret: Path) -> None:
    evil = dirs / "data.qcow2"
    qemu_img("-f", "qcow2", "-o", f"data_file={secret},data_file_raw=on", str(evil), "1M")
    with pytest.raises(ImageRefused, match="Image has data_file set"):
        images.inspect_disk(str(evil), "qcow2")
    info = images.qemu_img_info(str(evil), "qcow2")
    with pytest.raises(ImageRefused, match="data file"):
        images._check_qemu_img_info(str(evil), "qcow2", info)


def test_raw_declared_but_qcow2_content_is_refused(dirs: Path) -> None:
    disguised = dirs / "disguised.raw"
    qemu_img("-f", "qcow2", str(disguised), "1M")
    with pytest.raises(ImageRefused, match="declared raw but its content is qcow2"):
        images.inspect_disk(str(disguised), "raw")


def test_qcow2_declared_but_raw_content_is_refused(dirs: Path) -> None:
    plain = dirs / "plain.qcow2"
    qemu_img("-f", "raw", str(plain), "1M")
    with pytest.raises(ImageRefused, match="declared qcow2 but its content is raw"):
        images.inspect_disk(str(plain), "qcow2")


@pytest.mark.parametrize("fmt", ["vmdk", "vdi", "vpc", "qed"])
def test_other_formats_are_refused_whatever_declared(dirs: Path, fmt: str) -> None:
    other = dirs / f"other.{fmt}"
    qemu_img("-f", fmt, str(other), "1M")
    for declared in ("raw", "qcow2"):
        with pytest.raises(ImageRefused, match="its content is"):
            images.inspect_disk(str(other), declared)
    with pytest.raises(ImageRefused, match="not one of raw, qcow2"):
        images.inspect_disk(str(other), fmt)


def test_a_symlink_out_is_refused_at_spawn(dirs: Path, secret: Path) -> None:
    """Registration stores the resolved path; a link put there later is not followed."""
    qemu_img("-f", "raw", str(dirs / "disk.raw"), "1M")
    stored = images.resolve(str(dirs / "disk.raw"))
    (dirs / "disk.raw").unlink()
    (dirs / "disk.raw").symlink_to(secret)
    image = Image(kind="disk", disk=Path(stored), disk_format="raw", name="tampered")
    with pytest.raises(ImageRefused, match=r"image tampered is refused: .* has moved"):
        images.check_image(image)
    with pytest.raises(ImageRefused, match="Too many levels of symbolic links"):
        images.open_regular(stored)


def test_a_directory_swapped_for_a_symlink_is_refused(dirs: Path, secret: Path) -> None:
    sub = dirs / "sub"
    sub.mkdir()
    (sub / "secret.raw").write_bytes(b"\0" * 512)
    stored = images.resolve(str(sub / "secret.raw"))
    sub.rename(dirs / "old")
    sub.symlink_to(secret.parent)
    with pytest.raises(ImageRefused, match=f"now resolves to {secret}"):
        images.check_unmoved(stored)


def test_proc_self_root_paths_are_resolved(dirs: Path) -> None:
    qemu_img("-f", "raw", str(dirs / "disk.raw"), "1M")
    sneaky = f"/proc/self/root{dirs}/disk.raw"
    assert images.resolve(sneaky) == str(dirs / "disk.raw")
    assert images.is_inside(images.resolve(sneaky), (str(dirs),))
    assert not images.is_inside(images.resolve("/proc/self/root/etc/passwd"), (str(dirs),))
    with pytest.raises(ImageRefused, match="has moved"):
        images.check_unmoved(sneaky)


def test_kernel_files_must_be_regular_and_unmoved(dirs: Path) -> None:
    fifo = dirs / "kernel.fifo"
    os.mkfifo(fifo)
    with pytest.raises(ImageRefused, match="not a regular file"):
        images.check_image(Image(kind="kernel", kernel=fifo))
    with pytest.raises(ImageRefused, match="No such file"):
        images.check_image(Image(kind="kernel", kernel=dirs / "gone"))
    (dirs / "vmlinuz").write_bytes(b"\0")
    images.check_image(Image(kind="kernel", kernel=dirs / "vmlinuz"))


def test_a_directory_is_not_an_image(dirs: Path) -> None:
    with pytest.raises(ImageRefused, match="not a regular file"):
        images.open_regular(str(dirs))
