"""filemem-placement: run the real OpenStack Placement API as a standalone WSGI service."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from filemem.exceptions import PlacementError

LOG = logging.getLogger("filemem.placement")

DESCRIPTION = """\
Serve the real OpenStack Placement API (openstack-placement) over HTTP.

This server runs exactly one single-threaded worker (Python's wsgiref): requests are
handled one at a time, which is what SQLite needs (a single writer). For more than one
worker, put Placement on PostgreSQL (--database-connection postgresql+psycopg2://...)
and run placement.wsgi.api:application under a multi-worker WSGI server (uwsgi,
gunicorn, mod_wsgi) instead.

With the default --auth-strategy noauth2 clients send "X-Auth-Token: admin". Prints
"placement listening on http://HOST:PORT" on stdout once ready; stops on SIGTERM.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="filemem-placement",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument(
        "--state-path",
        type=Path,
        metavar="DIR",
        help="keep the database in DIR/placement.sqlite (created if missing)",
    )
    where.add_argument(
        "--database-connection",
        metavar="URL",
        help="SQLAlchemy URL of the Placement database, e.g. "
        "postgresql+psycopg2://user:pw@db/placement",
    )
    parser.add_argument(
        "--bind",
        default="127.0.0.1",
        metavar="ADDR",
        help="address to listen on (default: %(default)s)",
    )
    parser.add_argument(
        "--port", type=int, default=8778, help="TCP port; 0 picks a free one (default: %(default)s)"
    )
    parser.add_argument(
        "--config-file",
        action="append",
        default=[],
        metavar="FILE",
        help="placement.conf to read as well (e.g. [keystone_authtoken]); "
        "the database given here wins over it",
    )
    parser.add_argument(
        "--auth-strategy",
        choices=("noauth2", "keystone"),
        default="noauth2",
        help="placement [api] auth_strategy unless a config file sets it (default: %(default)s)",
    )
    parser.add_argument(
        "--db-sync-only",
        action="store_true",
        help="create or migrate the database to the latest schema and exit",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log each request to stderr")
    return parser


def _connection(args: argparse.Namespace) -> str:
    from filemem.placement.embedded import sqlite_connection

    if args.database_connection:
        return str(args.database_connection)
    state_path: Path = args.state_path
    state_path.mkdir(parents=True, exist_ok=True)
    return sqlite_connection(state_path)


def _announce(url: str) -> None:
    print(f"placement listening on {url}", flush=True)


def _run(args: argparse.Namespace) -> int:
    from filemem.placement import embedded, wsgi_server

    conf = embedded.placement_config(
        _connection(args), auth_strategy=args.auth_strategy, config_files=args.config_file
    )
    if args.db_sync_only:
        embedded.configure_database(conf, migrate=True)
        print("placement database is at the latest schema", flush=True)
        return 0
    app = embedded.load_app(conf)
    try:
        server = wsgi_server.make_server(app, args.bind, args.port)
    except OSError as exc:
        print(
            f"filemem-placement: cannot listen on {args.bind}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
    wsgi_server.serve_until_signalled(server, _announce)
    LOG.info("placement stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    from oslo_db import exception as db_exc  # type: ignore[import-untyped]
    from sqlalchemy import exc as sa_exc

    try:
        return _run(args)
    except (PlacementError, db_exc.DBError, sa_exc.SQLAlchemyError, ImportError) as exc:
        # ImportError: the URL names a database driver that is not installed.
        print(f"filemem-placement: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
