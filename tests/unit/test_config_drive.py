"""The config drive image (read back with pycdlib), its CD-ROM, and the agent writing it."""

from __future__ import annotations

import base64
import io
import json
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pycdlib
import pytest

from filemem.common.guests import Flavor, GuestRequest, HostFacts, Image
from filemem.compute.config_drive import write_config_drive
from filemem.compute.reconcile.plan import DesiredInstance
from filemem.exceptions import InvalidInput
from filemem.virt import configdrive
from filemem.virt.fake import FakeDriver
from filemem.virt.guest_config import build_domain

UUID = "0b6a4b8e-6f3e-4c36-9a0e-6c1f2d3e4f50"
FILES = {
    "openstack/latest/meta_data.json": b'{"uuid": "x"}',
    "openstack/2012-08-10/user_data": b"#!/bin/sh\necho hi\n",
    "ec2/latest/meta-data.json": b"{}",
}


def read_back(image: bytes) -> tuple[pycdlib.PyCdlib, io.BytesIO]:
    iso = pycdlib.PyCdlib()
    handle = io.BytesIO(image)
    iso.open_fp(handle)
    return iso, handle


def content(iso: pycdlib.PyCdlib, **path: str) -> bytes:
    out = io.BytesIO()
    iso.get_file_from_iso_fp(out, **path)
    return out.getvalue()


def test_iso_has_label_rock_ridge_and_joliet_names() -> None:
    iso, _ = read_back(configdrive.build_iso(FILES))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "config-2"
        assert iso.has_rock_ridge() and iso.has_joliet()
        for name, data in FILES.items():
            assert content(iso, rr_path=f"/{name}") == data  # what Linux mounts show
            assert content(iso, joliet_path=f"/{name}") == data  # what Windows shows
        names = [child.file_identifier().decode() for child in iso.list_children(rr_path="/")]
        assert {"ec2", "openstack"} <= set(names)
    finally:
        iso.close()


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "a/../../x", "a//b", "", "a/./b"])
def test_paths_cannot_leave_the_image(bad: str) -> None:
    with pytest.raises(InvalidInput):
        configdrive.build_iso({bad: b"x"})


def test_write_is_private_and_replaces(tmp_path: Path) -> None:
    path = tmp_path / "disk.config"
    path.write_bytes(b"old")
    configdrive.write_config_drive(FILES, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # user data can hold secrets
    iso, _ = read_back(path.read_bytes())
    iso.close()
    assert [p.name for p in tmp_path.iterdir()] == ["disk.config"]  # no temp file left


def test_guest_config_attaches_a_read_only_ide_cdrom() -> None:
    drive = Path("/var/lib/filemem/instances/x/disk.config")
    request = GuestRequest(
        name="vm1",
        uuid=UUID,
        flavor=Flavor(name="tiny", vcpus=1, memory_mb=256),
        image=Image(kind="disk", disk=Path("/img/d.qcow2")),
        console_log=Path("/var/lib/filemem/instances/x/console.log"),
        overlay=Path("/var/lib/filemem/instances/x/disk.qcow2"),
        config_drive=drive,
    )
    host = HostFacts(virt_type="qemu", file_backed_memory_mb=0, discard_supported=True)
    root = ET.fromstring(build_domain(request, host).to_xml())
    disks = root.findall("devices/disk")
    assert [d.get("device") for d in disks] == ["disk", "cdrom"]  # the boot disk stays first
    cdrom = disks[1]
    assert cdrom.find("readonly") is not None
    assert cdrom.find("source").get("file") == str(drive)  # type: ignore[union-attr]
    assert cdrom.find("driver").attrib == {"name": "qemu", "type": "raw"}  # type: ignore[union-attr]
    assert cdrom.find("target").attrib == {"dev": "hdd", "bus": "ide"}  # type: ignore[union-attr]
    no_drive = ET.fromstring(
        build_domain(GuestRequest(**{**request.__dict__, "config_drive": None}), host).to_xml()
    )
    assert [d.get("device") for d in no_drive.findall("devices/disk")] == ["disk"]


def desired(config_drive: bool) -> DesiredInstance:
    return DesiredInstance.from_api(
        {
            "uuid": UUID,
            "name": "Web 1",
            "vm_state": "building",
            "flavor": {"name": "m1", "vcpus": 1, "memory_mb": 256},
            "image": {"kind": "kernel", "kernel_path": "/k"},
            "config_drive": config_drive,
            "hostname": "web-1",
            "user_data": base64.b64encode(b"#cloud-config\n").decode(),
            "key_name": "k1",
            "public_keys": {"k1": "ssh-ed25519 AAAA k1"},
        }
    )


def test_agent_writes_the_drive_from_the_desired_instance(tmp_path: Path) -> None:
    driver = FakeDriver(state_path=tmp_path)
    write_config_drive(driver, desired(config_drive=True))
    path = driver.config_drive_path(UUID)
    assert path == tmp_path / "instances" / UUID / "disk.config"
    iso, _ = read_back(path.read_bytes())
    try:
        meta = json.loads(content(iso, rr_path="/openstack/latest/meta_data.json"))
        user_data = content(iso, rr_path="/openstack/latest/user_data")
    finally:
        iso.close()
    assert meta["uuid"] == UUID and meta["hostname"] == "web-1"
    assert meta["public_keys"] == {"k1": "ssh-ed25519 AAAA k1"}
    assert len(base64.b64decode(meta["random_seed"])) == 512
    assert user_data == b"#cloud-config\n"


def test_agent_writes_nothing_without_config_drive(tmp_path: Path) -> None:
    driver = FakeDriver(state_path=tmp_path)
    write_config_drive(driver, desired(config_drive=False))
    assert not (tmp_path / "instances").exists()
