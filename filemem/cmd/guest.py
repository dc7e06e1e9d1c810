"""`filemem guest ...`: read-only views of this host's guests (memory files, console)."""

from __future__ import annotations

import argparse

from filemem.cmd.common import load_conf, mib, print_json, print_table
from filemem.common.guests import GuestInfo
from filemem.compute.host_check import driver_settings
from filemem.compute.working_set import GuestWorkingSet, guest_working_set
from filemem.exceptions import GuestNotFound
from filemem.virt.driver import HypervisorDriver
from filemem.virt.libvirt.driver import LibvirtDriver


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    guest = sub.add_parser(
        "guest",
        help="this host's guests as libvirt runs them (read-only)",
        description="Read-only views of the guests on this host: where their memory lives and "
        "what their console printed. Guests are created, changed and deleted through the API "
        "(`filemem server ...`, `openstack server ...`), whose agents are their only owner.",
    )
    gsub = guest.add_subparsers(dest="guest_command", required=True)
    lst = gsub.add_parser(
        "list",
        help="guests with state, memory file and working set",
        description="One row per guest: its memory file, how much of it is allocated in the "
        "store, how much is resident in RAM (page cache for file-backed guests, QEMU's "
        "anonymous memory otherwise) and the page-ins (major faults) of its QEMU process.",
    )
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=cmd_list)
    console = gsub.add_parser("console", help="print the guest's serial console log")
    console.add_argument("guest", help="name or uuid")
    console.set_defaults(func=cmd_console)


def _driver(args: argparse.Namespace) -> HypervisorDriver:
    return LibvirtDriver(driver_settings(load_conf(args)))


def _row(g: GuestInfo, w: GuestWorkingSet | None) -> list[object]:
    f = g.memory_file
    share = w.resident_share if w is not None else None
    return [
        g.name,
        g.uuid,
        g.power_state.name,
        g.memory_mb,
        g.vcpus,
        "yes" if g.file_backed else "no",
        f.path if f else "",
        mib(f.allocated_bytes) if f else "",
        mib(w.resident_bytes) if w is not None else "",
        "" if share is None else f"{share:.0%}",
        "" if w is None or w.major_faults is None else w.major_faults,
    ]


def cmd_list(args: argparse.Namespace) -> int:
    driver = _driver(args)
    # Guests of this host's state_path only: other filemem hosts may share this libvirtd.
    guests = [g for g in driver.list_guests() if driver.instance_dir(g.uuid).is_dir()]
    working = {g.uuid: guest_working_set(g) for g in guests if g.domain_id is not None}
    if args.json:
        print_json([_as_dict(g, working.get(g.uuid)) for g in guests])
    else:
        print_table(
            [
                "name",
                "uuid",
                "state",
                "MiB",
                "vcpus",
                "file-backed",
                "memory file",
                "in store MiB",
                "in RAM MiB",
                "in RAM %",
                "page-ins",
            ],
            [_row(g, working.get(g.uuid)) for g in guests],
        )
    return 0


def _as_dict(g: GuestInfo, w: GuestWorkingSet | None) -> dict[str, object]:
    f = g.memory_file
    return {
        "name": g.name,
        "uuid": g.uuid,
        "power_state": g.power_state.name,
        "memory_mb": g.memory_mb,
        "vcpus": g.vcpus,
        "file_backed": g.file_backed,
        "memory_file": None
        if f is None
        else {
            "path": str(f.path),
            "nominal_bytes": f.nominal_bytes,
            "allocated_bytes": f.allocated_bytes,
        },
        "working_set": None if w is None else w.as_dict(),
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
