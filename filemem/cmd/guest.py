"""`filemem guest ...`: low-level guest commands on this host, without the API."""

from __future__ import annotations

import argparse
import uuid as uuidlib
from pathlib import Path

from filemem.cmd.common import load_conf, mib, parse_properties, print_json, print_table, wait_until
from filemem.common.guests import Flavor, GuestInfo, Image
from filemem.compute.host_check import driver_settings
from filemem.compute.resource_sync import ComputeHost
from filemem.exceptions import GuestNotFound
from filemem.virt.libvirt.driver import LibvirtDriver


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    guest = sub.add_parser("guest", help="guests on this host (low level, no API)")
    gsub = guest.add_subparsers(dest="guest_command", required=True)

    boot = gsub.add_parser("boot", help="define and start a guest from a local image",
                           description="Boots a guest on this host. File-backed hosts "
                           "([libvirt] file_backed_memory > 0) put its memory in a file "
                           "under libvirt's memory_backing_dir.")
    boot.add_argument("name")
    boot.add_argument("--memory", type=int, default=256, metavar="MIB", help="default 256")
    boot.add_argument("--vcpus", type=int, default=1)
    boot.add_argument("--uuid", help="default: a new random uuid")
    source = boot.add_mutually_exclusive_group(required=True)
    source.add_argument("--kernel", type=Path, help="kernel to boot (with --initrd, --cmdline)")
    source.add_argument("--disk", type=Path, help="qcow2/raw image, booted via a CoW overlay")
    source.add_argument("--test-image", type=Path, metavar="DIR",
                        help="directory built by scripts/build-test-image")
    boot.add_argument("--initrd", type=Path)
    boot.add_argument("--cmdline", default="")
    boot.add_argument("--disk-format", choices=["qcow2", "raw"], default="qcow2")
    boot.add_argument("--touch-mb", type=int, default=0,
                      help="with --test-image: MiB of memory the guest writes after boot")
    boot.add_argument("--property", action="append", default=[], metavar="KEY=VALUE",
                      help="flavor extra spec, e.g. hw:mem_page_size=large")
    boot.add_argument("--wait", action="store_true",
                      help="with --test-image: wait for the guest's ready line on its console")
    boot.add_argument("--timeout", type=float, default=120)
    boot.set_defaults(func=cmd_boot)

    lst = gsub.add_parser("list", help="guests with state and memory-file usage")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_list)

    for name, helptext in (("stop", "graceful shutdown, destroyed after --timeout"),
                           ("start", "start a stopped guest"),
                           ("reboot", "stop and start (graceful unless --hard)"),
                           ("delete", "destroy, undefine and remove every file"),
                           ("console", "print the guest's serial console log")):
        cmd = gsub.add_parser(name, help=helptext)
        cmd.add_argument("guest", help="name or uuid")
        if name == "stop":
            cmd.add_argument("--timeout", type=float, default=None,
                             help="seconds (default [DEFAULT] shutdown_timeout)")
        if name == "reboot":
            cmd.add_argument("--hard", action="store_true")
        cmd.set_defaults(func=cmd_action, action=name)


def _driver(args: argparse.Namespace) -> LibvirtDriver:
    return LibvirtDriver(driver_settings(load_conf(args)))


def _compute_host(args: argparse.Namespace) -> ComputeHost:
    """The driver plus Placement: guests booted and deleted here claim and release there."""
    host = ComputeHost.from_conf(load_conf(args))
    host.tracker.sync()
    return host


def _image(args: argparse.Namespace) -> Image:
    if args.test_image is not None:
        from filemem.devtools.test_image import TestImage

        test = TestImage(kernel=args.test_image / "vmlinuz", initrd=args.test_image / "initrd.img")
        return Image(kind="kernel", kernel=test.kernel, initrd=test.initrd,
                     cmdline=test.cmdline(touch_mb=args.touch_mb))
    if args.kernel is not None:
        return Image(kind="kernel", kernel=args.kernel, initrd=args.initrd, cmdline=args.cmdline)
    return Image(kind="disk", disk=args.disk, disk_format=args.disk_format)


def cmd_boot(args: argparse.Namespace) -> int:
    host = _compute_host(args)
    driver = host.driver
    flavor = Flavor(name=f"{args.memory}M-{args.vcpus}cpu", vcpus=args.vcpus,
                    memory_mb=args.memory, extra_specs=parse_properties(args.property))
    guest = host.manager.spawn(args.name, args.uuid or str(uuidlib.uuid4()), flavor,
                               _image(args))
    print(f"guest {guest.name} ({guest.uuid}) started")
    if guest.memory_file is not None:
        print(f"memory file {guest.memory_file.path}: {mib(guest.memory_file.nominal_bytes)} "
              f"MiB nominal, {mib(guest.memory_file.allocated_bytes)} MiB allocated")
    if args.wait and args.test_image is not None:
        log = driver.console_log(guest.uuid)
        if not wait_until("waiting for the guest's ready line",
                          lambda: _console_has(log, "FILEMEM-READY"), args.timeout):
            return 1
    return 0


def _console_has(log: Path, line: str) -> bool:
    try:
        return line in log.read_text(errors="replace")
    except FileNotFoundError:
        return False


def _row(g: GuestInfo) -> list[object]:
    f = g.memory_file
    return [g.name, g.uuid, g.power_state.name, g.memory_mb, g.vcpus,
            "yes" if g.file_backed else "no", f.path if f else "",
            mib(f.allocated_bytes) if f else ""]


def cmd_list(args: argparse.Namespace) -> int:
    guests = _driver(args).list_guests()
    if args.json:
        print_json([_as_dict(g) for g in guests])
    else:
        print_table(["name", "uuid", "state", "MiB", "vcpus", "file-backed", "memory file",
                     "allocated MiB"], [_row(g) for g in guests])
    return 0


def _as_dict(g: GuestInfo) -> dict[str, object]:
    f = g.memory_file
    return {
        "name": g.name, "uuid": g.uuid, "power_state": g.power_state.name,
        "memory_mb": g.memory_mb, "vcpus": g.vcpus, "file_backed": g.file_backed,
        "memory_file": None if f is None else {
            "path": str(f.path), "nominal_bytes": f.nominal_bytes,
            "allocated_bytes": f.allocated_bytes,
        },
    }


def _resolve(driver: LibvirtDriver, ident: str) -> GuestInfo:
    for guest in driver.list_guests():
        if ident in (guest.name, guest.uuid):
            return guest
    raise GuestNotFound(f"no filemem guest named or with uuid {ident!r} on this host")


def cmd_action(args: argparse.Namespace) -> int:
    host = _compute_host(args) if args.action == "delete" else None
    driver = host.driver if host is not None else _driver(args)
    guest = _resolve(driver, args.guest)
    if args.action == "stop":
        graceful = driver.power_off(guest.uuid, args.timeout)
        print(f"guest {guest.name} stopped ({'graceful' if graceful else 'destroyed'})")
    elif args.action == "start":
        driver.power_on(guest.uuid)
        print(f"guest {guest.name} started")
    elif args.action == "reboot":
        driver.reboot(guest.uuid, hard=args.hard)
        print(f"guest {guest.name} rebooted")
    elif host is not None:
        host.manager.destroy(guest.uuid)
        print(f"guest {guest.name} deleted")
    else:
        print(driver.console_log(guest.uuid).read_text(errors="replace"), end="")
    return 0
