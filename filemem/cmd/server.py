"""`filemem server ...`: servers through the Compute API, with progress while waiting."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filemem.cmd.common import load_conf, print_json, print_table, wait_until
from filemem.cmd.compute_api import ComputeApi, ComputeApiError, client_settings

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def add_api_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--os-endpoint", help="API endpoint (default: $FILEMEM_ENDPOINT or what `filemem up` saved)"
    )
    parser.add_argument("--os-token", help="API token (default: $FILEMEM_TOKEN or saved)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def api(args: argparse.Namespace) -> ComputeApi:
    conf = load_conf(args)
    return ComputeApi(*client_settings(Path(conf.state_path), args.os_endpoint, args.os_token))


def register(sub: Sub) -> Sub:
    server = sub.add_parser("server", help="servers (through the API)")
    ssub = server.add_subparsers(dest="server_command", required=True)
    create = ssub.add_parser("create", help="boot a server")
    create.add_argument("name")
    create.add_argument("--flavor", required=True, help="flavor name or id")
    create.add_argument("--image", required=True, help="image name or id")
    create.add_argument("--wait", action="store_true", help="wait until ACTIVE (or ERROR)")
    create.add_argument("--timeout", type=float, default=300)
    create.set_defaults(func=cmd_create)
    lst = ssub.add_parser("list", help="servers with status and host")
    lst.set_defaults(func=cmd_list)
    for name, helptext in (
        ("show", "one server"),
        ("delete", "delete a server"),
        ("stop", "power off"),
        ("start", "power on"),
        ("reboot", "reboot"),
    ):
        cmd = ssub.add_parser(name, help=helptext)
        cmd.add_argument("server", help="name or id")
        if name != "show":
            cmd.add_argument("--wait", action="store_true")
            cmd.add_argument("--timeout", type=float, default=300)
        if name == "reboot":
            cmd.add_argument("--hard", action="store_true")
        cmd.set_defaults(func=cmd_action, action=name)
    for parser in (
        create,
        lst,
        *[p for n, p in ssub.choices.items() if n not in ("create", "list")],
    ):
        add_api_args(parser)
    return ssub


def cmd_create(args: argparse.Namespace) -> int:
    client = api(args)
    flavor = client.find("flavor", args.flavor)
    image = client.find("image", args.image)
    created = client.call(
        "POST",
        "/servers",
        {"server": {"name": args.name, "flavorRef": flavor["id"], "imageRef": image["id"]}},
    )["server"]
    server = client.call("GET", f"/servers/{created['id']}")["server"]
    if args.wait and server["status"] not in ("ACTIVE", "ERROR"):
        server = _wait_status(client, created["id"], {"ACTIVE", "ERROR"}, args.timeout)
    _show(server, args.json)
    return 1 if server["status"] == "ERROR" else 0


def _wait_status(
    client: ComputeApi, uuid: str, targets: set[str], timeout: float
) -> dict[str, Any]:
    latest: dict[str, Any] = {}

    def reached() -> bool:
        latest.update(client.call("GET", f"/servers/{uuid}")["server"])
        return latest["status"] in targets and not latest.get("OS-EXT-STS:task_state")

    if not wait_until(f"waiting for {'/'.join(sorted(targets))}", reached, timeout, 0.5):
        status = latest.get("status")
        raise ComputeApiError(f"server {uuid} is still {status} after {timeout:.0f} s")
    return latest


def _row(s: dict[str, Any], flavor_names: dict[str, str]) -> list[Any]:
    flavor_id = s.get("flavor", {}).get("id", "")
    return [
        s["id"],
        s["name"],
        s["status"],
        s.get("OS-EXT-STS:task_state") or "",
        s.get("OS-EXT-SRV-ATTR:host") or "",
        flavor_names.get(flavor_id, flavor_id),
    ]


def cmd_list(args: argparse.Namespace) -> int:
    client = api(args)
    servers = client.call("GET", "/servers/detail")["servers"]
    if args.json:
        print_json(servers)
    else:
        # At 2.1 a server names its flavor by id only (as nova's does): one listing for names.
        flavors = client.call("GET", "/flavors")["flavors"]
        names = {flavor["id"]: flavor["name"] for flavor in flavors}
        print_table(
            ["id", "name", "status", "task", "host", "flavor"], [_row(s, names) for s in servers]
        )
    return 0


def _show(server: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(server)
        return
    rows = [[key, value] for key, value in sorted(server.items()) if key != "links"]
    print_table(["field", "value"], rows)


def cmd_action(args: argparse.Namespace) -> int:
    client = api(args)
    server = client.find("server", args.server)
    uuid = server["id"]
    if args.action == "show":
        _show(server, args.json)
        return 0
    if args.action == "delete":
        client.call("DELETE", f"/servers/{uuid}")
        if args.wait:
            _wait_deleted(client, uuid, args.timeout)
        print(f"server {server['name']} ({uuid}) deleted", file=sys.stderr)
        return 0
    bodies: dict[str, dict[str, Any]] = {
        "stop": {"os-stop": None},
        "start": {"os-start": None},
        "reboot": {"reboot": {"type": "HARD" if getattr(args, "hard", False) else "SOFT"}},
    }
    body = bodies[args.action]
    client.call("POST", f"/servers/{uuid}/action", body)
    if args.wait:
        target = {"SHUTOFF"} if args.action == "stop" else {"ACTIVE"}
        server = _wait_status(client, uuid, target | {"ERROR"}, args.timeout)
    print(f"server {server['name']}: {args.action} requested", file=sys.stderr)
    return 0


def _wait_deleted(client: ComputeApi, uuid: str, timeout: float) -> None:
    def gone() -> bool:
        try:
            client.call("GET", f"/servers/{uuid}")
        except ComputeApiError as exc:
            if " 404 " in str(exc):
                return True
            raise
        return False

    if not wait_until("waiting for the delete", gone, timeout, 0.5):
        raise ComputeApiError(f"server {uuid} still exists after {timeout:.0f} s")
