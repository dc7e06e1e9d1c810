"""`filemem host show`: Placement's view of this host next to libvirt's and the memory files'."""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oslo_config import cfg

from filemem.backing import store
from filemem.cmd.common import load_conf, mib, print_json, print_table
from filemem.cmd.compute_api import CLIENT_FILE
from filemem.common.guests import GuestInfo
from filemem.common.resources import DISK_GB, MEMORY_MB, VCPU
from filemem.compute.host_check import driver_settings
from filemem.compute.tracker import read_provider_uuid
from filemem.compute.working_set import HostWorkingSet, WorkingSetSampler
from filemem.exceptions import FilememError
from filemem.placement import PlacementClient, PlacementUnavailable, client_from_conf
from filemem.placement.http import HttpTransport
from filemem.virt.libvirt.driver import LibvirtDriver

_CLASSES = (MEMORY_MB, VCPU, DISK_GB)


def register(host_sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    show = host_sub.add_parser(
        "show",
        help="inventory, usage and per-guest allocations next to libvirt's view",
        description="Shows this host's resource provider in Placement (inventory, usage, "
        "traits) and one row per guest or allocation: what Placement holds for it, its "
        "power state in libvirt and the real size of its memory file. A row whose status is "
        "not 'ok' is what `filemem-compute` heals on its next run. Last, the working set: "
        "how much of each guest's memory is in RAM or only on the store, and the host's "
        "page-in, refault and store-write rates measured over one second.",
    )
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(func=cmd_show)


@dataclass(frozen=True)
class GuestRow:
    uuid: str
    guest: GuestInfo | None
    allocation: dict[str, int] | None

    @property
    def status(self) -> str:
        if self.guest is None:
            return "allocation without guest"
        if self.allocation is None:
            return "guest without allocation"
        if self.allocation.get(MEMORY_MB) != self.guest.memory_mb:
            return "memory differs"
        return "ok"

    def as_dict(self) -> dict[str, Any]:
        g = self.guest
        f = g.memory_file if g else None
        return {
            "uuid": self.uuid,
            "name": g.name if g else None,
            "power_state": g.power_state.name if g else None,
            "memory_mb": g.memory_mb if g else None,
            "vcpus": g.vcpus if g else None,
            "allocation": self.allocation,
            "status": self.status,
            "memory_file": None
            if f is None
            else {
                "path": str(f.path),
                "nominal_bytes": f.nominal_bytes,
                "allocated_bytes": f.allocated_bytes,
            },
        }

    def cells(self) -> list[object]:
        g, alloc = self.guest, self.allocation or {}
        f = g.memory_file if g else None
        return [
            g.name if g else "",
            self.uuid,
            g.power_state.name if g else "(none)",
            *(alloc.get(rc, "") for rc in _CLASSES),
            g.memory_mb if g else "",
            mib(f.nominal_bytes) if f else "",
            mib(f.allocated_bytes) if f else "",
            self.status,
        ]


def guest_rows(guests: list[GuestInfo], allocations: dict[str, dict[str, int]]) -> list[GuestRow]:
    by_uuid = {g.uuid: g for g in guests}
    return [
        GuestRow(uuid, by_uuid.get(uuid), allocations.get(uuid))
        for uuid in sorted(
            set(by_uuid) | set(allocations),
            key=lambda u: (by_uuid[u].name if u in by_uuid else "~", u),
        )
    ]


def gather(args: argparse.Namespace) -> dict[str, Any]:
    conf = load_conf(args)
    rp_uuid = read_provider_uuid(conf.state_path)
    if rp_uuid is None:
        raise FilememError(
            f"host {conf.host} has no resource provider yet (no "
            f"compute_node_uuid under {conf.state_path}): start filemem-compute"
        )
    client = _placement(conf)
    provider = client.get_resource_provider(rp_uuid)
    if provider is None:
        raise FilememError(
            f"resource provider {rp_uuid} of host {conf.host} is not in "
            f"Placement at {client.endpoint}: start filemem-compute"
        )
    driver = LibvirtDriver(driver_settings(conf))
    guests = [g for g in driver.list_guests() if driver.instance_dir(g.uuid).is_dir()]
    facts = None
    if conf.libvirt.file_backed_memory:
        facts = store.inspect_store(
            driver.memory_backing_dir(), store.qemu_user(driver.qemu_conf_text())
        )
    rows = guest_rows(guests, client.get_provider_allocations(rp_uuid))
    working = sample_working_set(driver.memory_backing_dir() if facts else None, guests)
    return {
        "host": conf.host,
        "provider": {
            "uuid": provider.uuid,
            "name": provider.name,
            "generation": provider.generation,
        },
        "placement": client.endpoint,
        "inventories": client.get_inventories(rp_uuid)[1],
        "usages": client.get_usages(rp_uuid),
        "traits": sorted(client.get_traits(rp_uuid)[1]),
        "store": facts.as_dict() if facts else None,
        "guests": [row.as_dict() for row in rows],
        "_rows": rows,
        "working_set": working_set_view(working),
        "_working": working,
    }


def sample_working_set(
    store_dir: Path | None, guests: list[GuestInfo], seconds: float = 1.0
) -> HostWorkingSet:
    """Two samples `seconds` apart, so page-ins, refaults and store writes come as rates."""
    sampler = WorkingSetSampler(store_dir)
    sampler.sample([], time.monotonic())
    time.sleep(seconds)
    return sampler.sample(guests, time.monotonic())


def working_set_view(working: HostWorkingSet) -> dict[str, Any]:
    rates, pressure = working.rates, working.pressure
    return {
        "guest_resident_bytes": working.resident_bytes,
        "guest_store_only_bytes": working.store_only_bytes,
        "store_write_bytes_per_s": rates.write_bytes_per_s if rates else None,
        "page_ins_per_s": rates.page_ins_per_s if rates else None,
        "refaults_per_s": rates.refaults_per_s if rates else None,
        "memory_pressure_some_avg10": pressure.psi_some.avg10 if pressure.psi_some else None,
        "memory_pressure_full_avg10": pressure.psi_full.avg10 if pressure.psi_full else None,
        "guests": [g.as_dict() for g in working.guests],
    }


def _placement(conf: cfg.ConfigOpts) -> PlacementClient:
    """The configured Placement; with embedded Placement, the running `filemem up`'s copy
    through its API (it must stay the only writer of the SQLite file), else the file itself."""
    saved = Path(conf.state_path) / CLIENT_FILE
    if conf.placement.endpoint or conf.placement.auth_type or not saved.is_file():
        return client_from_conf(conf)
    data = json.loads(saved.read_text())
    if "placement_endpoint" not in data:
        return client_from_conf(conf)
    transport = HttpTransport.with_token(data["placement_endpoint"], data["token"])
    try:
        client = PlacementClient(transport, microversion=conf.placement.microversion)
        client.request("GET", "/")
    except PlacementUnavailable:
        return client_from_conf(conf)  # `filemem up` is not running: nobody else writes
    return client


def _free(inv: dict[str, Any], used: int) -> int:
    return int((inv["total"] - inv["reserved"]) * inv["allocation_ratio"]) - used


def cmd_show(args: argparse.Namespace) -> int:
    view = gather(args)
    rows: list[GuestRow] = view.pop("_rows")
    working: HostWorkingSet = view.pop("_working")
    if args.json:
        print_json(view)
        return 0
    provider = view["provider"]
    print(
        f"host {view['host']}: resource provider {provider['name']} ({provider['uuid']}, "
        f"generation {provider['generation']}) in {view['placement']}"
    )
    print(f"traits: {', '.join(view['traits']) or '(none)'}")
    facts = view["store"]
    if facts:
        print(
            f"backing store {facts['path']} on {facts['device']}: size "
            f"{mib(facts['size_bytes'])} MiB, free {mib(facts['free_bytes'])} MiB"
        )
    usages = view["usages"]
    print_table(
        ["resource", "total", "reserved", "ratio", "used", "free"],
        [
            [
                rc,
                inv["total"],
                inv["reserved"],
                inv["allocation_ratio"],
                usages.get(rc, 0),
                _free(inv, usages.get(rc, 0)),
            ]
            for rc, inv in sorted(view["inventories"].items())
        ],
    )
    print_table(
        [
            "name",
            "uuid",
            "state",
            "alloc MEMORY_MB",
            "alloc VCPU",
            "alloc DISK_GB",
            "guest MiB",
            "file MiB",
            "file allocated MiB",
            "status",
        ],
        [row.cells() for row in rows],
    )
    _print_working_set(view["working_set"], working)
    return 0


def _rate(value: float | None, unit: str = "/s") -> str:
    return "n/a" if value is None else f"{value:,.0f}{unit}"


def _print_working_set(view: dict[str, Any], working: HostWorkingSet) -> None:
    some, full = view["memory_pressure_some_avg10"], view["memory_pressure_full_avg10"]
    psi = "n/a (no PSI in this kernel)" if some is None else f"some {some}%, full {full}%"
    write = view["store_write_bytes_per_s"]
    print(
        f"working set (over 1 s): guest memory in RAM {mib(view['guest_resident_bytes'])} "
        f"MiB, only on the store {mib(view['guest_store_only_bytes'])} MiB; store writes "
        f"{'n/a' if write is None else mib(int(write)) + ' MiB/s'}; page-ins "
        f"{_rate(view['page_ins_per_s'])}, refaults {_rate(view['refaults_per_s'])}; "
        f"memory pressure {psi}"
    )
    print_table(
        ["name", "MiB", "in store MiB", "in RAM MiB", "in RAM %", "page-ins"],
        [
            [
                g.name,
                mib(g.nominal_bytes),
                mib(g.store_bytes),
                mib(g.resident_bytes),
                "" if g.resident_share is None else f"{g.resident_share:.0%}",
                "" if g.major_faults is None else g.major_faults,
            ]
            for g in working.guests
        ],
    )
