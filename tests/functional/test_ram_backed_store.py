"""A tmpfs store larger than RAM: host check refuses the promise and Placement gets no more.

tmpfs takes any size= at mount time; what it can hold is RAM (+ swap). The store here is a
real tmpfs of 4x this machine's RAM, named through a qemu.conf of the test's own.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from filemem import conf as filemem_conf
from filemem.common.resources import MIB
from filemem.compute.tracker import ResourceTracker
from filemem.placement.embedded import EmbeddedPlacement
from tests.functional.conftest import REPO

FILEMEM = str(REPO / ".venv" / "bin" / "filemem")
RAM_BYTES = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@pytest.fixture
def tmpfs_store(state_path: Path) -> Iterator[Path]:
    target = state_path / "ram"
    target.mkdir()
    size_mb = 4 * RAM_BYTES // MIB
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "filemem-test", str(target)],
        check=True,
        capture_output=True,
    )
    try:
        yield target
    finally:
        subprocess.run(["umount", str(target)], check=True, capture_output=True)


def write_conf(state_path: Path, store: Path, file_backed_mb: int) -> Path:
    qemu_conf = state_path / "qemu.conf"
    qemu_conf.write_text(f'memory_backing_dir = "{store}"\n')
    conf = state_path / "filemem.conf"
    conf.write_text(
        f"[DEFAULT]\nstate_path = {state_path}\nram_allocation_ratio = 1.0\nhost = tmpfs-host\n"
        f"[libvirt]\nvirt_type = qemu\nfile_backed_memory = {file_backed_mb}\n"
        f"qemu_conf_path = {qemu_conf}\n"
    )
    return conf


def test_host_check_refuses_more_file_backed_memory_than_ram_can_hold(
    libvirtd: None, state_path: Path, tmpfs_store: Path
) -> None:
    beyond_ram_mb = 2 * RAM_BYTES // MIB  # less than the tmpfs size=, more than RAM
    conf = write_conf(state_path, tmpfs_store, beyond_ram_mb)
    result = subprocess.run(
        [FILEMEM, "--config-file", str(conf), "host", "check", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    [finding] = [f for f in report["findings"] if f["code"] == "store.exceeds_ram"]
    assert finding["severity"] == "error"
    assert finding["option"] == "[libvirt] file_backed_memory"
    assert report["store"]["size_bytes"] <= RAM_BYTES < report["store"]["fs_size_bytes"]


def test_placement_gets_no_more_than_ram_from_a_tmpfs_store(
    state_path: Path, tmpfs_store: Path, embedded_placement: EmbeddedPlacement
) -> None:
    beyond_ram_mb = 2 * RAM_BYTES // MIB
    conf = filemem_conf.load(config_files=[str(write_conf(state_path, tmpfs_store, beyond_ram_mb))])
    conf.set_override("host", f"tmpfs-{uuidlib.uuid4().hex[:8]}")
    from filemem.compute.host_check import driver_settings
    from filemem.virt.libvirt.driver import LibvirtDriver

    tracker = ResourceTracker(
        conf, LibvirtDriver(driver_settings(conf)), embedded_placement.client()
    )
    result = tracker.sync()
    memory = result.inventory.inventories["MEMORY_MB"]
    assert memory["total"] == beyond_ram_mb
    assert memory["total"] - memory["reserved"] <= RAM_BYTES // MIB
    # Free RAM (MemAvailable) binds before MemTotal here; either way the reason is logged.
    assert result.inventory.capacity_reason is not None
