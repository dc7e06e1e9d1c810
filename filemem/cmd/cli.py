"""The `filemem` command: host checks and low-level guest commands."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from filemem import __version__
from filemem.cmd import catalog, guest, host, live_migrate, server, up
from filemem.cmd.common import add_config_args
from filemem.exceptions import FilememError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="filemem",
        description="filemem runs QEMU/KVM guests whose memory lives in files on a fast "
        "backing store. Configure it in /etc/filemem/filemem.conf (nova-compatible option "
        "names: [libvirt] file_backed_memory, [DEFAULT] ram_allocation_ratio, ...).",
    )
    parser.add_argument("--version", action="version", version=f"filemem {__version__}")
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    add_config_args(parser)
    sub = parser.add_subparsers(dest="command", required=True)
    live_migrate.register_drain(host.register(sub))
    guest.register(sub)
    live_migrate.register_server(server.register(sub))
    catalog.register(sub)
    up.register(sub)
    _accept_config_file_anywhere(parser)
    return parser


def _accept_config_file_anywhere(parser: argparse.ArgumentParser) -> None:
    """`filemem host check --config-file F` works as well as `filemem --config-file F host
    check`: every leaf command accepts it too (SUPPRESS keeps the top-level value otherwise)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in set(action.choices.values()):
                _accept_config_file_anywhere(child)
            return
    if parser.prog != "filemem":
        parser.add_argument(
            "--config-file",
            action="append",
            metavar="PATH",
            default=argparse.SUPPRESS,
            help="configuration file (repeatable)",
        )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        result: int = args.func(args)
        return result
    except FilememError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
