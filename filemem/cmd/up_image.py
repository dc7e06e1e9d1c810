"""The test guest `filemem up` registers, if scripts/build-test-image has built it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# devtools/test_image.py (the builder, not installed with filemem) writes these files here and
# takes its names and boot arguments from this module, so the two cannot drift apart.
TEST_IMAGE_DIR = Path("/var/lib/filemem/images/test")
TEST_IMAGE_NAME = "filemem-test"
KERNEL_NAME = "vmlinuz"
INITRD_NAME = "initrd.img"
# Serial console, quiet boot; panic=-1 reboots at once on a panic, which -no-reboot and
# on_reboot=destroy turn into an exit. The image's /init reads its own filemem.* arguments.
BASE_CMDLINE = ("console=ttyS0", "panic=-1", "quiet", "loglevel=3")
# A plain boot: /init touches no memory and idles.
BOOT_CMDLINE = " ".join([*BASE_CMDLINE, "filemem.touch_mb=0"])
BUILD_HINT = "scripts/build-test-image"


@dataclass(frozen=True)
class BuiltImage:
    """A built test guest's direct-kernel-boot files."""

    kernel: Path
    initrd: Path

    def registration(self) -> dict[str, str]:
        """The body of POST /image/v2/images that registers it as TEST_IMAGE_NAME."""
        return {
            "name": TEST_IMAGE_NAME,
            "kernel_path": str(self.kernel),
            "initrd_path": str(self.initrd),
            "cmdline": BOOT_CMDLINE,
        }


def find_built(directory: Path = TEST_IMAGE_DIR) -> BuiltImage | None:
    """The test guest in `directory` when both of its files are there, else None."""
    image = BuiltImage(kernel=directory / KERNEL_NAME, initrd=directory / INITRD_NAME)
    return image if image.kernel.is_file() and image.initrd.is_file() else None
