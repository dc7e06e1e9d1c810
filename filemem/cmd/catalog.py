"""`filemem flavor|image|hypervisor ...`: the catalogue and the hosts, through the API."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filemem.cmd.common import parse_properties, print_json, print_table
from filemem.cmd.server import add_api_args, api
from filemem.exceptions import InvalidInput

if TYPE_CHECKING:
    from filemem.cmd.server import Sub


def register(sub: Sub) -> None:
    _register_flavor(sub)
    _register_image(sub)
    _register_hypervisor(sub)


def _register_flavor(sub: Sub) -> None:
    flavor = sub.add_parser("flavor", help="flavors (admin: create, delete, properties)")
    fsub = flavor.add_subparsers(dest="flavor_command", required=True)
    add_api_args(fsub.add_parser("list", help="all flavors"))
    show = fsub.add_parser("show", help="one flavor with its extra specs")
    show.add_argument("flavor")
    add_api_args(show)
    create = fsub.add_parser("create", help="create a flavor")
    create.add_argument("name")
    create.add_argument("--ram", type=int, required=True, metavar="MIB")
    create.add_argument("--vcpus", type=int, default=1)
    create.add_argument("--disk", type=int, default=0, metavar="GB")
    create.add_argument("--id", dest="flavor_id", help="default: assigned by the API")
    create.add_argument(
        "--property",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra spec, e.g. hw:mem_page_size=large (repeatable)",
    )
    add_api_args(create)
    delete = fsub.add_parser("delete", help="delete a flavor")
    delete.add_argument("flavor")
    add_api_args(delete)
    flavor.set_defaults(func=cmd_flavor)


def _register_image(sub: Sub) -> None:
    image = sub.add_parser("image", help="the local image catalogue")
    isub = image.add_subparsers(dest="image_command", required=True)
    add_api_args(isub.add_parser("list", help="all images"))
    show = isub.add_parser("show", help="one image")
    show.add_argument("image")
    add_api_args(show)
    create = isub.add_parser(
        "create",
        help="register a kernel+initrd or a disk image on the API host (files must exist there)",
    )
    create.add_argument("name")
    create.add_argument("--kernel", type=Path)
    create.add_argument("--initrd", type=Path)
    create.add_argument("--cmdline", default="")
    create.add_argument("--disk", type=Path)
    create.add_argument("--disk-format", choices=["qcow2", "raw"], default="qcow2")
    add_api_args(create)
    image.set_defaults(func=cmd_image)


def _register_hypervisor(sub: Sub) -> None:
    hyp = sub.add_parser("hypervisor", help="compute hosts and their capacity (Placement)")
    hsub = hyp.add_subparsers(dest="hypervisor_command", required=True)
    add_api_args(hsub.add_parser("list", help="all hosts"))
    show = hsub.add_parser("show", help="one host: memory from Placement, file-backed flag")
    show.add_argument("hypervisor")
    add_api_args(show)
    hyp.set_defaults(func=cmd_hypervisor)


def _show(item: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(item)
    else:
        print_table(["field", "value"], [[k, v] for k, v in sorted(item.items()) if k != "links"])


def cmd_flavor(args: argparse.Namespace) -> int:
    client = api(args)
    command = args.flavor_command
    if command == "list":
        flavors = client.call("GET", "/flavors/detail")["flavors"]
        if args.json:
            print_json(flavors)
        else:
            print_table(
                ["id", "name", "ram", "vcpus", "disk"],
                [[f["id"], f["name"], f["ram"], f["vcpus"], f["disk"]] for f in flavors],
            )
        return 0
    if command == "create":
        body: dict[str, Any] = {
            "name": args.name,
            "ram": args.ram,
            "vcpus": args.vcpus,
            "disk": args.disk,
        }
        if args.flavor_id:
            body["id"] = args.flavor_id
        flavor = client.call("POST", "/flavors", {"flavor": body})["flavor"]
        specs = parse_properties(args.property)
        if specs:
            client.call("POST", f"/flavors/{flavor['id']}/os-extra_specs", {"extra_specs": specs})
        flavor["extra_specs"] = specs
        _show(flavor, args.json)
        return 0
    flavor = client.find("flavor", args.flavor)
    if command == "delete":
        client.call("DELETE", f"/flavors/{flavor['id']}")
        return 0
    specs = client.call("GET", f"/flavors/{flavor['id']}/os-extra_specs")["extra_specs"]
    _show({**flavor, "extra_specs": specs}, args.json)
    return 0


def cmd_image(args: argparse.Namespace) -> int:
    client = api(args)
    if args.image_command == "list":
        images = client.images("GET", "?limit=1000")["images"]
        if args.json:
            print_json(images)
        else:
            print_table(
                ["id", "name", "kind", "status"],
                [[i["id"], i["name"], i.get("filemem_kind", ""), i["status"]] for i in images],
            )
        return 0
    if args.image_command == "create":
        if (args.kernel is None) == (args.disk is None):
            raise InvalidInput("give either --kernel (with --initrd, --cmdline) or --disk")
        named = {
            "name": args.name,
            "kernel_path": _abs(args.kernel),
            "initrd_path": _abs(args.initrd),
            "cmdline": args.cmdline if args.kernel else None,
            "disk_path": _abs(args.disk),
            "disk_format": args.disk_format if args.disk else None,
        }
        body = {key: value for key, value in named.items() if value is not None}
        _show(client.images("POST", body=body), args.json)
        return 0
    _show(client.find_image(args.image), args.json)
    return 0


def _abs(path: Path | None) -> str | None:
    return str(path.resolve()) if path is not None else None


def cmd_hypervisor(args: argparse.Namespace) -> int:
    client = api(args)
    if args.hypervisor_command == "list":
        hypervisors = client.call("GET", "/os-hypervisors/detail")["hypervisors"]
        # filemem's own figures live beside nova's shapes, not in them.
        own = client.call("GET", f"{client.endpoint}/filemem/v1/hypervisors")["hypervisors"]
        file_backed = {h["id"]: h["file_backed_memory"] for h in own}
        if args.json:
            print_json(hypervisors)
        else:
            print_table(
                ["id", "hostname", "state", "memory_mb", "memory_mb_used", "vms", "file-backed"],
                [
                    [
                        h["id"],
                        h["hypervisor_hostname"],
                        h.get("state"),
                        h.get("memory_mb"),
                        h.get("memory_mb_used"),
                        h.get("running_vms"),
                        file_backed.get(h["id"]),
                    ]
                    for h in hypervisors
                ],
            )
        return 0
    _show(client.find("hypervisor", args.hypervisor), args.json)
    return 0
