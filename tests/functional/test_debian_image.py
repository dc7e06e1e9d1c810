"""The Debian cloud image under plain libvirt: GRUB boots it, cloud-init reads a config drive,
ssh answers with the key from it, the user data ran, and guest memory holds what was written."""

from __future__ import annotations

import shutil
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.debian_boot import boot_and_check
from devtools.debian_image import DebianImage
from tests.functional.conftest import SCRATCH


@pytest.fixture
def scratch(libvirtd: None) -> Iterator[Path]:
    # Not tmp_path: QEMU runs as libvirt-qemu and must reach the overlay and the config drive.
    SCRATCH.mkdir(mode=0o755, parents=True, exist_ok=True)
    path = SCRATCH / f"debian-{uuidlib.uuid4().hex[:8]}"
    path.mkdir(mode=0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


# A ceiling, not a timing check: cloud-init's four Python stages under TCG took ~9 min on a
# 2-core machine at load 13 (other tests running); unloaded it is a few minutes.
@pytest.mark.timeout(1800)
def test_debian_image_boots_with_config_drive_and_answers_ssh(
    debian_image: DebianImage, scratch: Path
) -> None:
    result = boot_and_check(debian_image, scratch, memory_mb=64)
    assert result.user_data_ran, result.console_tail
    assert result.memory_sha_ok, result.console_tail
    # Not an assertion (a loaded machine may take far longer): the figure for the build log.
    print(f"Debian guest: ssh answered {result.seconds_to_ssh:.0f} s after virsh create")
