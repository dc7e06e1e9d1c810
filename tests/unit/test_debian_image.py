"""The Debian image builder's pieces that need no mirror: cache decision, disk layout, config
drive, and the memory check's expected hash."""

from __future__ import annotations

import io
import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pycdlib
import pytest

from devtools import debian_disk
from devtools.cloud_guest import SshKey, expected_fill_sha256, memory_check_command
from devtools.debian_boot import config_drive_files, domain_xml, write_config_drive
from devtools.debian_disk import PART_OFFSET, SECTOR, DiskLayout
from devtools.debian_image import (
    FILES,
    IMAGE_NAME,
    MASKED_UNITS,
    rebuild_reason,
    recipe_sha256,
)


def test_cache_is_reused_only_while_recipe_and_file_match() -> None:
    manifest = {"recipe_sha256": recipe_sha256(), "sha256": "abc"}
    assert rebuild_reason(manifest, "abc") is None
    assert rebuild_reason(None, "abc") == "no manifest"
    assert rebuild_reason(manifest, None) == f"{IMAGE_NAME} is missing"
    assert rebuild_reason(manifest, "def") == f"{IMAGE_NAME} does not match the manifest"
    stale = {**manifest, "recipe_sha256": "0" * 64}
    assert rebuild_reason(stale, "abc") == "the recipe has changed"


def test_recipe_keeps_guests_fast_and_ssh_keyed() -> None:
    cfg = FILES["etc/cloud/cloud.cfg.d/90-filemem.cfg"]
    assert "datasource_list: [ ConfigDrive, OpenStack, None ]" in cfg
    assert "locale" not in cfg  # minutes of locale-gen under TCG
    assert "systemd-networkd-wait-online.service" in MASKED_UNITS
    assert "LABEL=debian-root / ext4" in FILES["etc/fstab"]


def test_grub_cfg_boots_the_kernel_by_root_label() -> None:
    cfg = DiskLayout(root_label="debian-root", kernel_release="6.1.0-9-cloud-amd64").grub_cfg()
    assert "linux /boot/vmlinuz-6.1.0-9-cloud-amd64 root=LABEL=debian-root ro" in cfg
    assert "console=ttyS0,115200n8" in cfg
    assert "initrd /boot/initrd.img-6.1.0-9-cloud-amd64" in cfg


def test_disk_has_mbr_grub_and_labelled_ext4_without_loop_devices(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hostname").write_text("debian\n")
    raw = tmp_path / "disk.raw"
    debian_disk.partition(raw)
    debian_disk.make_root_fs(root, raw, "debian-root")
    debian_disk.install_grub(raw, tmp_path)
    with raw.open("rb") as f:  # the first sectors only: the file is 2 GiB (sparse)
        data = f.read(PART_OFFSET + 2048)
    assert data[510:512] == b"\x55\xaa"
    entry = data[446:462]
    assert entry[0] == 0x80  # bootable
    assert entry[4] == 0x83  # Linux
    assert int.from_bytes(entry[8:12], "little") == PART_OFFSET // SECTOR
    boot = (debian_disk.GRUB_DIR / "boot.img").read_bytes()
    assert data[: debian_disk.MBR_CODE_BYTES] == boot[: debian_disk.MBR_CODE_BYTES]
    core = (tmp_path / "core.img").read_bytes()
    assert data[SECTOR : SECTOR + len(core)] == core
    superblock = data[PART_OFFSET + 1024 : PART_OFFSET + 2048]
    assert superblock[56:58] == b"\x53\xef"  # ext2/3/4 magic
    assert superblock[120:136].rstrip(b"\0") == b"debian-root"


def test_config_drive_is_config_2_with_nova_paths(tmp_path: Path) -> None:
    key = SshKey(private=tmp_path / "k", public_text="ssh-ed25519 AAAA test")
    files = config_drive_files("0f1e2d3c-0000-4000-8000-000000000001", "vm", key)
    iso_path = tmp_path / "config.iso"
    write_config_drive(iso_path, files)
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "config-2"
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, rr_path="/openstack/latest/meta_data.json")
        meta = json.loads(out.getvalue())
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, joliet_path="/openstack/latest/user_data")
    finally:
        iso.close()
    assert meta["public_keys"] == {"filemem-test": "ssh-ed25519 AAAA test"}
    assert meta["hostname"] == "vm"
    assert out.getvalue().startswith(b"#!/bin/sh\n")


def test_domain_xml_has_overlay_cdrom_and_bridge_nic(tmp_path: Path) -> None:
    xml = domain_xml(
        "n",
        "0f1e2d3c-0000-4000-8000-000000000001",
        tmp_path / "d",
        tmp_path / "c",
        tmp_path / "log",
    )
    root = ET.fromstring(xml)
    assert root.get("type") == "qemu"
    assert [d.get("device") for d in root.iter("disk")] == ["disk", "cdrom"]
    nic = root.find("devices/interface")
    assert nic is not None and nic.get("type") == "bridge"


@pytest.mark.parametrize("mb", [1, 3])
def test_memory_check_expected_hash_matches_the_shell(mb: int, tmp_path: Path) -> None:
    # The same script the guest runs, here on the host: /dev/shm is a tmpfs on both.
    done = subprocess.run(memory_check_command(mb), capture_output=True, text=True, check=True)
    assert done.stdout.strip() == expected_fill_sha256(mb)
