"""What a simulated host's private /etc/libvirt leaves out of the system one (pure)."""

from __future__ import annotations

from devtools.cloud.libvirt_host import SYSTEM_LIBVIRT_ETC, system_objects


def test_the_system_libvirtds_domains_and_secrets_stay_behind() -> None:
    qemu = str(SYSTEM_LIBVIRT_ETC / "qemu")
    names = ["instance-1.xml", "vm.xml", "autostart", "networks"]
    assert system_objects(qemu, names) == {"instance-1.xml", "vm.xml", "autostart"}
    top = ["qemu.conf", "libvirtd.conf", "qemu", "nwfilter", "secrets"]
    assert system_objects(str(SYSTEM_LIBVIRT_ETC), top) == {"secrets"}


def test_configuration_comes_along() -> None:
    networks = str(SYSTEM_LIBVIRT_ETC / "qemu" / "networks")
    assert system_objects(networks, ["default.xml", "autostart"]) == set()
    assert system_objects(str(SYSTEM_LIBVIRT_ETC / "nwfilter"), ["clean-traffic.xml"]) == set()
