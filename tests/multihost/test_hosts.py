"""Simulated hosts: private libvirtds, stores in their own mount namespaces, raw live migration."""

from __future__ import annotations

import subprocess
import time
import uuid as uuidlib
from pathlib import Path

import pytest

from devtools.cloud import namespaces
from devtools.cloud.guest import raw_guest_xml
from devtools.cloud.spec import MEMORY_BACKING_DIR, CloudSpec, HostSpec
from devtools.test_image import READY_LINE, TestImage, ensure_test_image
from tests.multihost.conftest import hosts_down, hosts_up

# Simulated hosts, each with a libvirtd of its own in a namespace: needs libvirtd.
pytestmark = pytest.mark.functional

IMAGE_DIR = Path("/var/lib/filemem/images/test")


def virsh(spec: CloudSpec, host: HostSpec, *args: str) -> str:
    return subprocess.run(
        ["virsh", "-c", spec.libvirt_uri(host), *args],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout


def in_host(spec: CloudSpec, host: HostSpec, *argv: str) -> str:
    holder = namespaces.holder_pid(spec, host)
    assert holder is not None, f"{host.name} has no namespace holder"
    return namespaces.run_in(holder, argv)


def memory_files(spec: CloudSpec, host: HostSpec) -> list[str]:
    """pc.ram files under the host's store, seen from inside its mount namespace."""
    out = in_host(spec, host, "find", str(MEMORY_BACKING_DIR), "-name", "pc.ram")
    return out.split()


def wait_console(path: Path, text: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    content = path.read_text(errors="replace")[-1500:] if path.exists() else "<no log>"
    raise AssertionError(f"{text!r} not on {path} within {timeout} s:\n{content}")


def boot(spec: CloudSpec, host: HostSpec, image: TestImage, memory_mb: int = 256) -> str:
    name = "mh-" + uuidlib.uuid4().hex[:8]
    console = spec.state_path / f"{name}.log"
    xml = raw_guest_xml(
        name,
        kernel=image.kernel,
        initrd=image.initrd,
        cmdline=image.cmdline(touch_mb=32),
        memory_mb=memory_mb,
        serial_log=console,
    )
    xml_path = spec.host_dir(host) / f"{name}.xml"
    xml_path.write_text(xml)
    virsh(spec, host, "create", str(xml_path))
    # The console file is written in the host's private state dir, reachable from here too.
    wait_console(spec.host_dir(host) / "state" / f"{name}.log", READY_LINE)
    return name


def test_hosts_are_separate(two_hosts: CloudSpec) -> None:
    spec = two_hosts
    uuids = set()
    for host in spec.hosts:
        assert in_host(spec, host, "hostname").strip() == host.name
        caps = virsh(spec, host, "capabilities")
        uuids.add(caps.split("<uuid>")[1].split("</uuid>")[0])
        mounts = in_host(spec, host, "findmnt", "-n", "-o", "FSTYPE,SIZE", str(MEMORY_BACKING_DIR))
        assert mounts.split()[0] == "tmpfs", mounts
        addresses = in_host(spec, host, "ip", "-o", "-4", "addr")
        assert spec.address_of(host) in addresses
        assert "192.0.2." not in addresses  # only loopback and the host's own veth
    assert len(uuids) == 2, "each host's libvirtd has its own host_uuid"


def test_guest_memory_on_its_host_and_raw_live_migration(two_hosts: CloudSpec) -> None:
    spec = two_hosts
    h1, h2 = spec.hosts
    image = ensure_test_image(IMAGE_DIR)
    name = boot(spec, h1, image)
    try:
        assert name in virsh(spec, h1, "list", "--name").split()
        assert name not in virsh(spec, h2, "list", "--all", "--name").split()
        files = memory_files(spec, h1)
        assert any(name in f for f in files), files
        assert not any(name in f for f in memory_files(spec, h2))
        start = time.monotonic()
        virsh(
            spec,
            h1,
            "migrate",
            "--live",
            "--p2p",
            "--persistent",
            "--undefinesource",
            name,
            spec.libvirt_uri(h2),
        )
        took = time.monotonic() - start
        print(f"raw live migration of a 256 MiB guest: {took:.2f} s")
        assert name in virsh(spec, h2, "list", "--name").split()
        assert name not in virsh(spec, h1, "list", "--all", "--name").split()
        assert any(name in f for f in memory_files(spec, h2))
        assert not any(name in f for f in memory_files(spec, h1))
        assert took < 60
    finally:
        for host in spec.hosts:
            subprocess.run(
                ["virsh", "-c", spec.libvirt_uri(host), "destroy", name], capture_output=True
            )
            subprocess.run(
                ["virsh", "-c", spec.libvirt_uri(host), "undefine", name], capture_output=True
            )


def test_a_new_host_defines_none_of_the_system_libvirtds_domains(tmp_path: Path) -> None:
    """A host's private /etc/libvirt starts from the system one: the domains defined there
    (the functional tests' and `filemem up`'s guests) must not come along. They did: a host
    brought up while the system libvirtd had guests defined listed them as its own, and
    test_three_host_cloud's "no instance-* domain left" check failed under a full run."""
    name = "fm-leak-" + uuidlib.uuid4().hex[:8]
    xml = tmp_path / f"{name}.xml"
    xml.write_text(
        raw_guest_xml(
            name,
            kernel=IMAGE_DIR / "vmlinuz",
            initrd=IMAGE_DIR / "initrd.img",
            cmdline="console=ttyS0",
            file_backed=False,
        )
    )
    system = ["virsh", "-c", "qemu:///system"]
    subprocess.run([*system, "define", str(xml)], check=True, capture_output=True, timeout=120)
    try:
        spec = hosts_up(1)
    finally:
        subprocess.run([*system, "undefine", name], capture_output=True, timeout=120, check=False)
    try:
        (host,) = spec.hosts
        assert virsh(spec, host, "list", "--all", "--name").split() == []
        assert not list((spec.host_dir(host) / "etc" / "qemu").glob("*.xml"))
    finally:
        hosts_down(spec)
