"""`filemem guest ...`: read-only views of this host's guests (memory files, console)."""

from __future__ import annotations

import argparse

from filemem.cmd.common import load_conf, mib, print_json, print_table
from filemem.common.guests import GuestInfo
from filemem.compute.host_check import driver_settings
from filemem.exceptions import GuestNotFound
from filemem.virt.driver import HypervisorDriver
from filemem.virt.libvirt.driver import LibvirtDriver


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    guest = sub.add_parser(
        "guest", help="this host's guests as libvirt runs them (read-only)",
        description="Read-only views of the guests on this host: where their memory lives and "
        "what their console printed. Guests are created, changed and deleted through the API "
        "(`filemem server ...`, `openstack server ...`), whose agents are their only owner.")
    gsub = guest.add_subparsers(dest="guest_command", required=True)
    lst = gsub.add_parser("list", help="guests with state and memory-file usage")
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_list)
    console = gsub.add_parser("console", help="print the guest's serial console log")
    console.add_argument("guest", help="name or uuid")
    console.set_defaults(func=cmd_console)


def _driver(args: argparse.Namespace) -> HypervisorDriver:
    return LibvirtDriver(driver_settings(load_conf(args)))


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


def _resolve(driver: HypervisorDriver, ident: str) -> GuestInfo:
    for guest in driver.list_guests():
        if ident in (guest.name, guest.uuid):
            return guest
    raise GuestNotFound(f"no filemem guest named or with uuid {ident!r} on this host")


def cmd_console(args: argparse.Namespace) -> int:
    driver = _driver(args)
    guest = _resolve(driver, args.guest)
    print(driver.console_log(guest.uuid).read_text(errors="replace"), end="")
    return 0
