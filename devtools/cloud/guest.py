"""Domain XML of a plain test guest for raw libvirt runs (pure): what `virsh create` boots."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path


def raw_guest_xml(
    name: str,
    *,
    kernel: Path,
    initrd: Path,
    cmdline: str,
    memory_mb: int = 256,
    serial_log: Path | None = None,
    file_backed: bool = True,
) -> str:
    """A TCG guest booting the test kernel; file-backed memory as filemem's guests have it
    (shared file source, immediate allocation, discard); its serial console to `serial_log`."""
    domain = ET.Element("domain", type="qemu")
    ET.SubElement(domain, "name").text = name
    ET.SubElement(domain, "memory", unit="MiB").text = str(memory_mb)
    ET.SubElement(domain, "vcpu").text = "1"
    if file_backed:
        backing = ET.SubElement(domain, "memoryBacking")
        ET.SubElement(backing, "source", type="file")
        ET.SubElement(backing, "access", mode="shared")
        ET.SubElement(backing, "allocation", mode="immediate")
        ET.SubElement(backing, "discard")
    os_el = ET.SubElement(domain, "os")
    ET.SubElement(os_el, "type", arch="x86_64", machine="pc").text = "hvm"
    ET.SubElement(os_el, "kernel").text = str(kernel)
    ET.SubElement(os_el, "initrd").text = str(initrd)
    ET.SubElement(os_el, "cmdline").text = cmdline
    ET.SubElement(domain, "on_poweroff").text = "destroy"
    devices = ET.SubElement(domain, "devices")
    if serial_log is None:
        ET.SubElement(devices, "serial", type="pty")
    else:
        serial = ET.SubElement(devices, "serial", type="file")
        ET.SubElement(serial, "source", path=str(serial_log))
    ET.SubElement(devices, "memballoon", model="none")
    return ET.tostring(domain, encoding="unicode")
