"""A BIOS-bootable partitioned disk from a root directory, with no loop device and no mount.

sfdisk writes an MBR partition table into a plain file, ``mkfs.ext4 -d`` fills the partition at
its byte offset, and GRUB goes in as grub-install would put it: boot.img's code in the MBR and
core.img (grub-mkimage, with every module it needs built in) in the gap before the partition.
grub-mkimage already writes core.img's own length into its first sector and boot.img's default
next-sector is 1, so neither needs patching.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.image_inputs import TestImageError

SECTOR = 512
MIB = 1024 * 1024
# The partition starts at 1 MiB, as every partitioning tool does; core.img lives before it.
PART_OFFSET = MIB
# What the guest sees; nova refuses flavors with a smaller root disk than this (min_disk).
DISK_BYTES = 2 * 1024 * MIB
GRUB_DIR = Path("/usr/lib/grub/i386-pc")
# boot.img's code ends where the MBR's disk signature and partition table start.
MBR_CODE_BYTES = 440
GRUB_MODULES = ("biosdisk", "part_msdos", "ext2", "normal", "linux", "configfile", "echo")
# root= by label, not /dev/vda1: the disk may be on another bus (sda) under another driver.
KERNEL_ARGS = ("ro", "console=tty0", "console=ttyS0,115200n8", "quiet")


@dataclass(frozen=True)
class DiskLayout:
    root_label: str
    kernel_release: str

    def grub_cfg(self) -> str:
        args = " ".join([f"root=LABEL={self.root_label}", *KERNEL_ARGS])
        return (
            "set timeout=0\n"
            "set default=0\n"
            "menuentry 'Debian GNU/Linux' {\n"
            f"    linux /boot/vmlinuz-{self.kernel_release} {args}\n"
            f"    initrd /boot/initrd.img-{self.kernel_release}\n"
            "}\n"
        )


def recipe() -> dict[str, Any]:
    """The layout's inputs, part of the image's cache key."""
    return {
        "part_offset": PART_OFFSET,
        "disk_bytes": DISK_BYTES,
        "grub_modules": list(GRUB_MODULES),
        "kernel_args": list(KERNEL_ARGS),
    }


def _run(cmd: list[str], stdin: str | None = None) -> None:
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise TestImageError(f"{cmd[0]} is not installed (see scripts/install)") from exc
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip()[-3000:]
        raise TestImageError(f"{' '.join(cmd)} failed ({done.returncode}): {detail}")


def partition(raw: Path) -> None:
    """A sparse file of DISK_BYTES with one bootable Linux partition from PART_OFFSET to the end."""
    with raw.open("wb") as f:
        f.truncate(DISK_BYTES)
    table = f"label: dos\nstart={PART_OFFSET // SECTOR}, type=83, bootable\n"
    _run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(raw)], stdin=table)


def make_root_fs(root: Path, raw: Path, label: str) -> None:
    """ext4 from the root directory's contents, at the partition's offset inside raw."""
    size_kib = (DISK_BYTES - PART_OFFSET) // 1024
    # Inode tables written now are zeros qemu-img leaves out; lazy ones would be written by the
    # guest's kernel after every first boot, into each guest's overlay.
    extended = f"offset={PART_OFFSET},lazy_itable_init=0,lazy_journal_init=0"
    cmd = ["mkfs.ext4", "-q", "-F", "-L", label, "-d", str(root), "-E", extended]
    _run([*cmd, str(raw), f"{size_kib}k"])


def install_grub(raw: Path, work: Path) -> None:
    """boot.img's code into the MBR, core.img right after it."""
    core = work / "core.img"
    prefix = "(hd0,msdos1)/boot/grub"
    _run(
        [
            "grub-mkimage",
            "--format=i386-pc",
            f"--directory={GRUB_DIR}",
            f"--prefix={prefix}",
            f"--output={core}",
            *GRUB_MODULES,
        ]
    )
    core_bytes = core.read_bytes()
    if len(core_bytes) > PART_OFFSET - SECTOR:
        raise TestImageError(f"core.img is {len(core_bytes)} bytes, too big for the MBR gap")
    boot = (GRUB_DIR / "boot.img").read_bytes()
    fd = os.open(raw, os.O_WRONLY)
    try:
        os.pwrite(fd, boot[:MBR_CODE_BYTES], 0)
        os.pwrite(fd, core_bytes, SECTOR)
    finally:
        os.close(fd)


def write_bootable_qcow2(root: Path, layout: DiskLayout, raw: Path, qcow2: Path) -> None:
    """The whole disk: grub.cfg into root, then partition, file system, GRUB, compressed qcow2."""
    grub_dir = root / "boot" / "grub"
    grub_dir.mkdir(parents=True, exist_ok=True)
    (grub_dir / "grub.cfg").write_text(layout.grub_cfg())
    partition(raw)
    make_root_fs(root, raw, layout.root_label)
    install_grub(raw, raw.parent)
    # zstd: the guest's reads of compressed clusters decompress several times faster than zlib.
    options = "compression_type=zstd"
    cmd = ["qemu-img", "convert", "-q", "-c", "-f", "raw", "-O", "qcow2", "-o", options]
    _run([*cmd, str(raw), str(qcow2)])
