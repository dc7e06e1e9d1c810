"""`python -m devtools.cloud up N | down | status`: several hosts on one machine."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from devtools.cloud import cloud
from devtools.cloud.procs import CloudError
from devtools.cloud.spec import DEFAULT_ROOT, parse_host_option
from filemem.exceptions import InvalidInput

DEFAULT_NAME = "dev"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/cloud",
        description="N simulated filemem hosts on this machine: each a network + mount "
        "namespace with its own libvirtd and memory store, plus PostgreSQL, Placement "
        "(gunicorn) and two filemem-api processes in the root namespace. Needs root.",
    )
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT, help="state directory root")
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="bring a cloud up and print how to reach it")
    up.add_argument("count", type=int, help="number of hosts (1-16)")
    up.add_argument("--name", default=DEFAULT_NAME, help="cloud name (default: %(default)s)")
    up.add_argument(
        "--host",
        action="append",
        default=[],
        metavar="I:SETTINGS",
        help="per-host settings, e.g. 2:file_backed=off or 1:store_mb=2048 (default: "
        "file-backed, 1024 MiB store)",
    )
    for verb, text in (("down", "stop everything a cloud started"), ("status", "show a cloud")):
        command = sub.add_parser(verb, help=text)
        command.add_argument("name", nargs="?", default=DEFAULT_NAME)
    return parser


def _up(args: argparse.Namespace) -> int:
    overrides = dict(parse_host_option(text) for text in args.host)
    up = cloud.up(args.name, args.count, overrides, root=args.root)
    print()
    print("\n".join(cloud.reach_lines(up)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "up":
            return _up(args)
        if args.command == "down":
            if not cloud.down(args.name, root=args.root):
                print(f"no cloud named {args.name!r} is up", file=sys.stderr)
                return 1
            return 0
        found = cloud.load(args.name, args.root)
        if found is None:
            others = ", ".join(cloud.names(args.root)) or "none"
            print(f"no cloud named {args.name!r} is up (up: {others})", file=sys.stderr)
            return 1
        print("\n".join(cloud.status_lines(found)))
        print("\n".join(cloud.reach_lines(found)))
        return 0
    except (CloudError, InvalidInput) as exc:
        print(f"cloud: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
