"""The test guest with a network: the test image's initramfs followed by a second archive
(virtio_net and its dependencies, a DHCP client hook, a new /init), which the kernel unpacks
over the first. Cached beside the test image, rebuilt when any of its inputs changes."""

from __future__ import annotations

import gzip
import hashlib
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

from devtools.cpio import CpioEntry, directory, regular_file, symlink, write_newc
from devtools.image_inputs import TestImageError, _fetch_deb, _run
from devtools.test_image import MANIFEST_NAME, READY_LINE, TestImage, _publish, sha256_file

# In load order (each after what its .modinfo "depends=" names): the Debian cloud kernel builds
# virtio itself, its PCI transport and virtio_net as modules.
NET_MODULES = (
    "virtio_ring",
    "virtio",
    "virtio_pci_modern_dev",
    "virtio_pci_legacy_dev",
    "virtio_pci",
    "failover",
    "net_failover",
    "virtio_net",
)
DHCP_PREFIX = "FILEMEM-DHCP"
NET_INITRD_NAME = "initrd-net.img"
NET_MANIFEST_NAME = "initrd-net.json"
NET_APPLETS = ("insmod", "ifconfig", "udhcpc", "ping")
EVENT_SCRIPT_PATH = "bin/dhcp-event"

# The guest loads the NIC driver, asks for a lease on eth0 (udhcpc, as the busybox test image
# has no other DHCP client), configures what it got and says so on its console.
NET_INIT = f"""#!/bin/busybox sh
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
for module in {" ".join(NET_MODULES)}; do
    insmod /lib/modules/$module.ko || echo "{DHCP_PREFIX}-ERROR insmod $module"
done
echo {READY_LINE}
i=0
while [ ! -e /sys/class/net/eth0 ] && [ "$i" -lt 30 ]; do sleep 1; i=$((i + 1)); done
ifconfig lo up
ifconfig eth0 up
udhcpc -i eth0 -n -q -t 30 -T 1 -O mtu -s /{EVENT_SCRIPT_PATH} \\
    || echo "{DHCP_PREFIX}-ERROR no lease"
while :; do sleep 3600; done
"""

DHCP_EVENT = f"""#!/bin/busybox sh
case "$1" in
    bound|renew)
        ifconfig "$interface" "$ip" netmask "$subnet" up
        [ -n "$mtu" ] && ifconfig "$interface" mtu "$mtu"
        echo "{DHCP_PREFIX} ip=$ip router=$router mtu=${{mtu:-none}}"
        ;;
esac
"""


def net_entries(modules: dict[str, bytes]) -> list[CpioEntry]:
    """The second archive: modules, the applets' links, the DHCP hook and /init."""
    entries = [directory("lib"), directory("lib/modules")]
    entries += [regular_file(f"lib/modules/{n}.ko", modules[n]) for n in NET_MODULES]
    entries += [symlink(f"bin/{applet}", "busybox") for applet in NET_APPLETS]
    entries.append(regular_file(EVENT_SCRIPT_PATH, DHCP_EVENT.encode(), perm=0o755))
    entries.append(regular_file("init", NET_INIT.encode(), perm=0o755))
    return entries


def _inputs(image: TestImage) -> dict[str, object]:
    """What the networked initrd is made of: a change to any of these rebuilds it."""
    manifest = json.loads((image.initrd.parent / MANIFEST_NAME).read_text())
    return {
        "base_initrd_sha256": sha256_file(image.initrd),
        "kernel_package": manifest["kernel_package"],
        "kernel_release": manifest["kernel_release"],
        "script_sha256": hashlib.sha256((NET_INIT + DHCP_EVENT).encode()).hexdigest(),
        "modules": list(NET_MODULES),
    }


def _modules(package: str, release: str, workdir: Path) -> dict[str, bytes]:
    """The modules, from the very kernel package the test image's kernel came from."""
    deb = _fetch_deb(package, workdir)
    root = workdir / "root"
    _run(["dpkg-deb", "-x", str(deb), str(root)])
    found = {p.name.removesuffix(".ko"): p for p in (root / "lib/modules" / release).rglob("*.ko")}
    missing = [name for name in NET_MODULES if name not in found]
    if missing:
        raise TestImageError(f"{package} has no module {', '.join(missing)}")
    return {name: found[name].read_bytes() for name in NET_MODULES}


def ensure_net_initrd(image: TestImage, log: Callable[[str], None] = print) -> Path:
    """The test image's initrd with networking (see the module docstring), built if needed."""
    dest = image.initrd.parent
    inputs = _inputs(image)
    manifest_path, initrd = dest / NET_MANIFEST_NAME, dest / NET_INITRD_NAME
    try:
        cached = json.loads(manifest_path.read_text())
    except (FileNotFoundError, ValueError):
        cached = None
    if cached == {**inputs, "sha256": sha256_file(initrd)}:
        return initrd
    log(f"building {initrd} (virtio_net from {inputs['kernel_package']})")
    with tempfile.TemporaryDirectory(prefix="filemem-net-initrd-") as tmp:
        modules = _modules(str(inputs["kernel_package"]), str(inputs["kernel_release"]), Path(tmp))
        base = image.initrd.read_bytes()

        def write(path: Path) -> None:
            with path.open("wb") as raw:
                raw.write(base)
                with gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) as gz:
                    write_newc(net_entries(modules), gz)

        digest = _publish(dest, NET_INITRD_NAME, write)
    text = json.dumps({**inputs, "sha256": digest}, indent=2, sort_keys=True) + "\n"
    _publish(dest, NET_MANIFEST_NAME, lambda p: p.write_text(text))
    return initrd
