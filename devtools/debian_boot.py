"""Boot the Debian image under plain libvirt (TCG) with a config drive and a bridge; time ssh."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pycdlib

from devtools.cloud_guest import (
    SshKey,
    expected_fill_sha256,
    make_ssh_key,
    memory_check_command,
    ssh,
    wait_for_cloud_init,
    wait_for_ssh,
)
from devtools.debian_image import DEFAULT_DEST, DebianImage, ensure_debian_image
from filemem.virt.xml.domain import (
    Boot,
    Console,
    Devices,
    Disk,
    Domain,
    Features,
    MemBalloon,
    Os,
    Serial,
)

BRIDGE = "fmtestbr0"
HOST_ADDRESS = "10.213.0.1"
GUEST_ADDRESS = "10.213.0.10"
PREFIX = 24
GUEST_MAC = "52:54:00:fe:13:0a"
# A path in the guest, written by the user data script; nothing on the host uses it.
USER_DATA_MARK = "/var/tmp/filemem-user-data-ran"  # noqa: S108
USER_DATA = f"#!/bin/sh\necho filemem > {USER_DATA_MARK}\n"
CONNECT = ("virsh", "-c", "qemu:///system")


def _iso_add(iso: Any, path: str, data: bytes) -> None:
    """One file under its long name (Rock Ridge and Joliet, what cloud-init reads) and a short
    ISO 9660 level-1 name derived from it."""
    parts = path.strip("/").split("/")
    short = "/" + "/".join(p.replace(".", "_").replace("-", "_").upper()[:8] for p in parts)
    iso.add_fp(io.BytesIO(data), len(data), short + ";1", rr_name=parts[-1], joliet_path=path)


def write_config_drive(dest: Path, files: dict[str, bytes]) -> None:
    """An ISO 9660 volume labelled config-2 holding files (nova's layout: openstack/latest/...)."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, rock_ridge="1.09", joliet=3, vol_ident="config-2")
    made: set[str] = set()
    for path in sorted(files):
        parts = path.strip("/").split("/")
        for depth in range(1, len(parts)):
            directory = "/" + "/".join(parts[:depth])
            if directory not in made:
                short = "/" + "/".join(p.replace("-", "_").upper()[:8] for p in parts[:depth])
                iso.add_directory(short, rr_name=parts[depth - 1], joliet_path=directory)
                made.add(directory)
        _iso_add(iso, "/" + "/".join(parts), files[path])
    iso.write(str(dest))
    iso.close()


def config_drive_files(uuid: str, name: str, key: SshKey) -> dict[str, bytes]:
    meta = {
        "uuid": uuid,
        "name": name,
        "hostname": name,
        "launch_index": 0,
        "availability_zone": "nova",
        "public_keys": {"filemem-test": key.public_text},
    }
    network = {
        "links": [{"id": "tap0", "type": "phy", "ethernet_mac_address": GUEST_MAC, "mtu": 1500}],
        "networks": [
            {
                "id": "network0",
                "type": "ipv4",
                "link": "tap0",
                "ip_address": GUEST_ADDRESS,
                "netmask": "255.255.255.0",
                "routes": [],
                "network_id": str(uuidlib.uuid4()),
            }
        ],
        "services": [],
    }
    return {
        "/openstack/latest/meta_data.json": json.dumps(meta).encode(),
        "/openstack/latest/network_data.json": json.dumps(network).encode(),
        "/openstack/latest/user_data": USER_DATA.encode(),
    }


def domain_xml(name: str, uuid: str, overlay: Path, drive: Path, console: Path) -> str:
    """A TCG domain booting the overlay, the config drive as a CD-ROM, a NIC on BRIDGE."""
    domain = Domain(
        type="qemu",
        name=name,
        uuid=uuid,
        memory=512 * 1024,
        vcpu=1,
        os=Os(type="hvm", arch="x86_64", boot=[Boot(dev="hd")]),
        features=Features(acpi=True, apic=True),
        on_poweroff="destroy",
        devices=Devices(
            disks=[
                Disk(
                    type="file",
                    device="disk",
                    driver_name="qemu",
                    driver_type="qcow2",
                    source_file=str(overlay),
                    target_dev="vda",
                    target_bus="virtio",
                ),
                Disk(
                    type="file",
                    device="cdrom",
                    driver_name="qemu",
                    driver_type="raw",
                    source_file=str(drive),
                    target_dev="hdd",
                    target_bus="ide",
                    readonly=True,
                ),
            ],
            serials=[Serial(type="file", source_path=str(console), target_port=0)],
            consoles=[Console(type="file", source_path=str(console), target_type="serial")],
            memballoon=MemBalloon(model="none"),
        ),
    )
    element = domain.to_element()
    devices = element.find("devices")
    assert devices is not None
    # filemem's XML model has no <interface> yet (the network work adds one).
    nic = ET.SubElement(devices, "interface", type="bridge")
    ET.SubElement(nic, "mac", address=GUEST_MAC)
    ET.SubElement(nic, "source", bridge=BRIDGE)
    ET.SubElement(nic, "model", type="virtio")
    return ET.tostring(element, encoding="unicode")


@contextmanager
def static_bridge() -> Iterator[None]:
    """BRIDGE with HOST_ADDRESS, deleted afterwards; the guest's address is static (from the
    config drive's network_data.json), so no DHCP server is needed."""
    subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)
    subprocess.run(["ip", "link", "add", BRIDGE, "type", "bridge"], check=True)
    try:
        subprocess.run(["ip", "addr", "add", f"{HOST_ADDRESS}/{PREFIX}", "dev", BRIDGE], check=True)
        subprocess.run(["ip", "link", "set", BRIDGE, "up"], check=True)
        yield
    finally:
        subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, check=False)


@dataclass(frozen=True)
class BootResult:
    seconds_to_ssh: float
    user_data_ran: bool
    memory_sha_ok: bool
    console_tail: str


def boot_and_check(image: DebianImage, scratch: Path, memory_mb: int = 64) -> BootResult:
    """Boot, wait for ssh, check the user data ran and memory_mb MiB of RAM read back intact."""
    name = f"fm-debian-{uuidlib.uuid4().hex[:8]}"
    uuid = str(uuidlib.uuid4())
    overlay, drive, console = (
        scratch / "disk.qcow2",
        scratch / "config.iso",
        scratch / "console.log",
    )
    key = make_ssh_key(scratch)
    cmd = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", image.disk_format]
    subprocess.run([*cmd, "-b", str(image.disk), str(overlay)], check=True)
    write_config_drive(drive, config_drive_files(uuid, name, key))
    xml_path = scratch / "domain.xml"
    xml_path.write_text(domain_xml(name, uuid, overlay, drive, console))
    with static_bridge():
        subprocess.run([*CONNECT, "create", str(xml_path)], check=True, capture_output=True)
        try:
            seconds = wait_for_ssh(key, image.user, GUEST_ADDRESS)
            # User scripts run in cloud-init's last stage, which may still be ahead of ssh.
            wait_for_cloud_init(key, image.user, GUEST_ADDRESS)
            marker = ssh(key, image.user, GUEST_ADDRESS, ["cat", USER_DATA_MARK])
            fill = ssh(key, image.user, GUEST_ADDRESS, memory_check_command(memory_mb), timeout=600)
        finally:
            subprocess.run([*CONNECT, "destroy", name], capture_output=True, check=False)
    tail = console.read_text(errors="replace")[-3000:] if console.exists() else ""
    return BootResult(
        seconds_to_ssh=seconds,
        user_data_ran=marker.returncode == 0 and marker.stdout.strip() == "filemem",
        memory_sha_ok=fill.stdout.strip() == expected_fill_sha256(memory_mb),
        console_tail=tail,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.debian_boot",
        description="Boot the Debian image under libvirt (TCG), ssh in, report boot-to-ssh time.",
    )
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="the image's directory")
    args = parser.parse_args(argv)
    image = ensure_debian_image(args.dest)
    # Under /var/tmp with mode 0755: QEMU (libvirt-qemu) must reach the overlay and the ISO.
    with tempfile.TemporaryDirectory(prefix="filemem-debian-boot-", dir="/var/tmp") as tmp:
        Path(tmp).chmod(0o755)
        started = time.monotonic()
        result = boot_and_check(image, Path(tmp))
    print(json.dumps({**result.__dict__, "console_tail": None}, indent=2))
    print(f"boot to ssh: {result.seconds_to_ssh:.1f} s (total {time.monotonic() - started:.1f} s)")
    return 0 if result.user_data_ran and result.memory_sha_ok else 1


if __name__ == "__main__":
    sys.exit(main())
