"""`filemem server migrate` and `filemem host drain`: live migrations through the Compute API,
followed with a progress bar from the migration's memory figures."""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from filemem.cmd.common import _console, print_json, print_table
from filemem.cmd.compute_api import ComputeApi, ComputeApiError
from filemem.cmd.server import add_api_args, api

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]

# force (2.30), the server's migrations and memory figures (2.23), abort (2.24).
VERSION = "2.30"
TERMINAL = ("completed", "failed", "cancelled", "error")
MOVABLE = ("ACTIVE", "PAUSED")
DRAIN_REASON = "draining"


@dataclass
class Outcome:
    """How one live migration ended (as the API recorded it)."""

    server: str
    name: str
    source: str
    status: str
    dest: str = ""
    seconds: float = 0.0
    reason: str = ""

    @property
    def moved(self) -> bool:
        return self.status == "completed"


def start(
    client: ComputeApi, uuid: str, host: str | None, block: bool, force: bool
) -> dict[str, Any]:
    """POST os-migrateLive at 2.30; the migration record it created (newest of the server)."""
    body: dict[str, Any] = {"host": host, "block_migration": block if block else "auto"}
    if force:
        body["force"] = True
    client.call("POST", f"/servers/{uuid}/action", {"os-migrateLive": body}, VERSION)
    return latest(client, uuid)


def latest(client: ComputeApi, uuid: str) -> dict[str, Any]:
    query = urlencode({"instance_uuid": uuid, "migration_type": "live-migration"})
    rows = client.call("GET", f"/os-migrations?{query}", VERSION)["migrations"]
    if not rows:
        raise ComputeApiError(f"the API recorded no live migration of server {uuid}")
    row: dict[str, Any] = rows[0]
    return row


def failure_reason(client: ComputeApi, uuid: str) -> str:
    """The Error event's text of the server's newest live-migration action (admins see it)."""
    actions = client.call("GET", f"/servers/{uuid}/os-instance-actions")["instanceActions"]
    for action in actions:
        if action["action"] != "live-migration":
            continue
        detail = client.call("GET", f"/servers/{uuid}/os-instance-actions/{action['request_id']}")[
            "instanceAction"
        ]
        for event in reversed(detail.get("events") or []):
            if event.get("result") == "Error":
                return str(event.get("traceback") or event.get("event"))
        break
    return ""


def follow(
    client: ComputeApi, uuid: str, migration: dict[str, Any], timeout: float, quiet: bool = False
) -> dict[str, Any]:
    """Poll until the migration ends; a bar of the memory copied (the agent's figures)."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(binary_units=True),
        TimeElapsedColumn(),
    )
    console = _console(sys.stderr)
    deadline = time.monotonic() + timeout
    path = f"/servers/{uuid}/migrations/{migration['id']}"
    with Progress(*columns, console=console, transient=True, disable=quiet) as progress:
        task = progress.add_task(f"{uuid[:8]} {migration['status']}", total=None)
        while migration["status"] not in TERMINAL:
            if time.monotonic() > deadline:
                raise ComputeApiError(
                    f"live migration {migration['id']} of {uuid} is still {migration['status']} "
                    f"after {timeout:.0f} s"
                )
            time.sleep(0.5)
            try:
                live = client.call("GET", path, VERSION)["migration"]
            except ComputeApiError as exc:
                if " 404 " not in str(exc):
                    raise
                # No longer in progress: os-migrations has how it ended.
                migration = latest(client, uuid)
                continue
            migration = {**migration, **live}
            total = live.get("memory_total_bytes")
            progress.update(
                task,
                description=f"{uuid[:8]} {live['status']}",
                total=total or None,
                completed=live.get("memory_processed_bytes") or 0,
            )
    return migration


def migrate_one(
    client: ComputeApi,
    server: dict[str, Any],
    host: str | None,
    *,
    block: bool = False,
    force: bool = False,
    wait: bool = True,
    timeout: float = 600,
    quiet: bool = False,
) -> Outcome:
    uuid = server["id"]
    source = server.get("OS-EXT-SRV-ATTR:host") or ""
    started = time.monotonic()
    try:
        migration = start(client, uuid, host, block, force)
        if wait:
            migration = follow(client, uuid, migration, timeout, quiet)
    except ComputeApiError as exc:
        return Outcome(uuid, server["name"], source, "refused", reason=str(exc))
    outcome = Outcome(
        uuid,
        server["name"],
        source,
        migration["status"],
        dest=migration.get("dest_compute") or "",
        seconds=time.monotonic() - started,
    )
    if migration["status"] in ("failed", "cancelled", "error"):
        outcome.reason = failure_reason(client, uuid)
    return outcome


def register_server(ssub: Sub) -> None:
    cmd = ssub.add_parser(
        "migrate",
        help="live-migrate a server to another host",
        description="Live-migrates the server (os-migrateLive at 2.30). Without --host the "
        "scheduler picks the destination; --force skips the scheduler's filters for --host "
        "(the destination is still claimed and prechecked). Exits 1 unless it completed "
        "(with --wait) or was accepted.",
    )
    cmd.add_argument("server", help="name or id")
    cmd.add_argument("--host", help="destination host (default: the scheduler's choice)")
    cmd.add_argument("--block-migration", action="store_true", help="copy local disks too")
    cmd.add_argument("--force", action="store_true", help="skip the scheduler for --host")
    cmd.add_argument("--wait", action="store_true", help="follow it until it ends")
    cmd.add_argument("--timeout", type=float, default=600)
    cmd.set_defaults(func=cmd_migrate)
    add_api_args(cmd)


def cmd_migrate(args: argparse.Namespace) -> int:
    if args.force and not args.host:
        print("--force needs --host", file=sys.stderr)
        return 2
    client = api(args)
    server = client.find("server", args.server)
    outcome = migrate_one(
        client,
        server,
        args.host,
        block=args.block_migration,
        force=args.force,
        wait=args.wait,
        timeout=args.timeout,
        quiet=args.json or not sys.stderr.isatty(),
    )
    if args.json:
        print_json(outcome.__dict__)
    else:
        print_table(["server", "from", "to", "status", "seconds", "reason"], [_cells(outcome)])
    ok = outcome.moved or (not args.wait and outcome.status in ("queued", "running"))
    return 0 if ok else 1


def _cells(o: Outcome) -> list[Any]:
    return [f"{o.name} ({o.server})", o.source, o.dest, o.status, f"{o.seconds:.1f}", o.reason]


def register_drain(host_sub: Sub) -> None:
    cmd = host_sub.add_parser(
        "drain",
        help="disable a host and live-migrate every guest off it",
        description='Disables HOST\'s compute service (reason "draining": it takes no new '
        "guests), then live-migrates its guests one by one to hosts the scheduler picks, and "
        "ends with a report of what moved and what could not. Exits 1 if anything stayed.",
    )
    cmd.add_argument("host", help="the compute host to empty")
    cmd.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    cmd.add_argument("--timeout", type=float, default=600, help="per guest, seconds")
    cmd.set_defaults(func=cmd_drain)
    add_api_args(cmd)


def _confirm(host: str, count: int) -> bool:
    if not sys.stdin.isatty():
        print("refusing to drain without --yes (stdin is not a terminal)", file=sys.stderr)
        return False
    answer = input(f"disable {host} and live-migrate its {count} server(s) off it? [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def on_host(client: ComputeApi, host: str) -> list[dict[str, Any]]:
    query = urlencode({"host": host, "all_tenants": "1"})
    servers: list[dict[str, Any]] = client.call("GET", f"/servers/detail?{query}")["servers"]
    # Oldest first: the order they were built in.
    return [s for s in reversed(servers) if s.get("OS-EXT-SRV-ATTR:host") == host]


def drain(client: ComputeApi, host: str, timeout: float, quiet: bool) -> list[Outcome]:
    """Disable `host`, then move its guests one at a time; one Outcome per guest."""
    body = {"host": host, "binary": "nova-compute", "disabled_reason": DRAIN_REASON}
    client.call("PUT", "/os-services/disable-log-reason", body)
    outcomes = []
    servers = on_host(client, host)
    for index, server in enumerate(servers, 1):
        if not quiet:
            _console(sys.stderr).print(
                f"[{index}/{len(servers)}] {server['name']} ({server['id']})"
            )
        if server["status"] not in MOVABLE:
            reason = f"status {server['status']}: only ACTIVE or PAUSED servers live-migrate"
            outcomes.append(Outcome(server["id"], server["name"], host, "skipped", reason=reason))
            continue
        outcomes.append(migrate_one(client, server, None, timeout=timeout, quiet=quiet))
    return outcomes


def cmd_drain(args: argparse.Namespace) -> int:
    client = api(args)
    services = client.call("GET", f"/os-services?{urlencode({'host': args.host})}")["services"]
    if not services:
        print(f"no compute service on host {args.host!r}", file=sys.stderr)
        return 2
    if not args.yes and not _confirm(args.host, len(on_host(client, args.host))):
        return 2
    quiet = args.json or not sys.stderr.isatty()
    outcomes = drain(client, args.host, args.timeout, quiet)
    if args.json:
        print_json([o.__dict__ for o in outcomes])
    else:
        print_table(
            ["server", "from", "to", "status", "seconds", "reason"],
            [_cells(o) for o in outcomes],
        )
        stayed = sum(1 for o in outcomes if not o.moved)
        print(
            f"{len(outcomes) - stayed} moved, {stayed} could not move; {args.host} stays "
            f"disabled ({DRAIN_REASON})",
            file=sys.stderr,
        )
    return 0 if all(o.moved for o in outcomes) else 1
