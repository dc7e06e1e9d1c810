"""filemem-api: migrate the database, then serve the Compute API, scheduler and agent API."""

from __future__ import annotations

import argparse
import logging
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from oslo_config import cfg

from filemem.api.app import create_app
from filemem.api.console_limits import ConsoleLimits
from filemem.api.context import ApiContext
from filemem.api.keystone import KeystoneAuthenticator
from filemem.api.keystone import register_opts as register_keystone_opts
from filemem.api.metadata_service import create_metadata_app
from filemem.cmd.common import add_config_args, load_conf
from filemem.cmd.http_server import server_config
from filemem.conductor.hosts import make_scheduler
from filemem.conductor.network.builtin import driver_from_conf
from filemem.conf.api import AUTH_KEYSTONE
from filemem.conf.database import connection_url
from filemem.db import migrate
from filemem.db.session import Database
from filemem.exceptions import ConfigError, FilememError
from filemem.placement import client_from_conf

LOG = logging.getLogger("filemem.api")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="filemem-api",
        description="Creates or migrates filemem's database ([database] connection), then "
        "serves the Compute API on [api] bind_host:bind_port with the scheduler and the agent "
        'API. Prints "filemem-api listening on http://HOST:PORT" once ready; stops on SIGTERM '
        "or SIGINT. Several filemem-api processes may share one PostgreSQL database.",
    )
    add_config_args(parser)
    parser.add_argument(
        "--db-sync-only",
        action="store_true",
        help="create or migrate the database to the latest schema and exit",
    )
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    return parser


def check_api_conf(conf: cfg.ConfigOpts) -> None:
    """Refuse a configuration that does not say unambiguously how callers authenticate."""
    if conf.api.auth_strategy == AUTH_KEYSTONE:
        check_keystone_conf(conf)
    elif not conf.api.admin_token:
        raise ConfigError(
            "[api] admin_token",
            "must be set: clients send it as X-Auth-Token "
            "(generate one, e.g. `openssl rand -hex 24`)",
        )
    if conf.metadata.enabled and not conf.neutron.metadata_proxy_shared_secret:
        raise ConfigError(
            "[neutron] metadata_proxy_shared_secret",
            "must be set with [metadata] enabled: the metadata API serves only requests "
            "whose X-Instance-ID the proxy signed with it",
        )


def check_keystone_conf(conf: cfg.ConfigOpts) -> None:
    """auth_strategy = keystone: users log in through Keystone only, so a static token that
    never expires and cannot be revoked must not be configured beside it."""
    if conf.api.admin_token:
        raise ConfigError(
            "[api] admin_token",
            "must be unset with [api] auth_strategy = keystone: users get their tokens from "
            "Keystone and compute agents use host credentials ([DEFAULT] api_token)",
        )
    register_keystone_opts(conf)
    if not conf.keystone_authtoken.www_authenticate_uri:
        raise ConfigError(
            "[keystone_authtoken] www_authenticate_uri",
            "must be set with [api] auth_strategy = keystone: Keystone's public endpoint, "
            "named to clients in the WWW-Authenticate header of a 401",
        )
    if not conf.keystone_authtoken.auth_type:
        raise ConfigError(
            "[keystone_authtoken] auth_type",
            "must be set with [api] auth_strategy = keystone, with filemem's service "
            "credentials (e.g. auth_type = password, auth_url, username, password, "
            "project_name, user_domain_name, project_domain_name) to validate tokens",
        )


def build_app(conf: cfg.ConfigOpts, ctx: ApiContext) -> FastAPI:
    """The app with the authenticators [api] auth_strategy asks for."""
    if conf.api.auth_strategy != AUTH_KEYSTONE:
        return create_app(ctx)
    return create_app(
        ctx,
        authenticators=[KeystoneAuthenticator(conf)],
        keystone_uri=conf.keystone_authtoken.www_authenticate_uri,
    )


def build_context(conf: cfg.ConfigOpts, url: str) -> ApiContext:
    """The ApiContext: database, configured Placement and the scheduler over live services."""
    database = Database(url)
    placement = client_from_conf(conf)
    return ApiContext(
        database=database,
        placement=placement,
        scheduler=make_scheduler(conf, placement, database),
        admin_token=conf.api.admin_token,
        conf=conf,
        public_endpoint=conf.api.public_endpoint,
        service_down_time=float(conf.api.service_down_time),
        image_dirs=tuple(conf.api.image_dirs),
        image_store_dir=str(Path(conf.state_path) / "image-store"),
        image_size_cap=int(conf.api.image_size_cap),
        allow_resize_to_same_host=bool(conf.allow_resize_to_same_host),
        force_config_drive=bool(conf.force_config_drive),
        enable_instance_password=bool(conf.api.enable_instance_password),
        long_poll_interval=float(conf.api.long_poll_recheck_interval),
        change_notifications=bool(conf.api.change_notifications),
        console_limits=ConsoleLimits(
            int(conf.api.max_console_requests_per_server), int(conf.api.max_console_requests)
        ),
        build_timeout=float(conf.api.build_timeout),
        build_cleanup_interval=float(conf.api.build_cleanup_interval),
        body_timeout=float(conf.api.client_body_timeout),
        network=driver_from_conf(conf),
    )


def listening_socket(host: str, port: int) -> socket.socket:
    """A bound TCP socket for uvicorn. Its protocol is named (IPPROTO_TCP, not 0): asyncio
    sets TCP_NODELAY only on connections of such sockets, and without it every answer on a
    kept-alive connection waited ~40 ms for the client's delayed ACK (Nagle)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve(
    app: FastAPI, conf: cfg.ConfigOpts, sock: socket.socket, on_ready: Callable[[str], None]
) -> None:
    """Serve `app` with uvicorn on the bound socket until SIGTERM/SIGINT."""

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                on_ready(url_of(sock))

    _Server(server_config(app, conf)).run(sockets=[sock])


def _announce(url: str) -> None:
    print(f"filemem-api listening on {url}", flush=True)


def start_metadata(conf: cfg.ConfigOpts, ctx: ApiContext) -> None:
    """[metadata] enabled: nova's metadata API on its own listener, in a thread of its own
    (the process ends with the Compute API's server)."""
    if not conf.metadata.enabled:
        return
    app = create_metadata_app(ctx, conf.neutron.metadata_proxy_shared_secret)
    sock = listening_socket(conf.metadata.listen, conf.metadata.listen_port)
    server = uvicorn.Server(server_config(app, conf))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="metadata", daemon=True
    )
    thread.start()
    print(f"filemem-api metadata listening on {url_of(sock)}", flush=True)


def run(args: argparse.Namespace) -> int:
    conf = load_conf(args)
    url = connection_url(conf)
    if args.db_sync_only:
        migrate.upgrade(url)
        print("filemem database is at the latest schema", flush=True)
        return 0
    check_api_conf(conf)
    migrate.upgrade(url)
    ctx = build_context(conf, url)
    try:
        sock = listening_socket(conf.api.bind_host, conf.api.bind_port)
    except OSError as exc:
        print(
            f"filemem-api: cannot listen on {conf.api.bind_host}:{conf.api.bind_port}: {exc}",
            file=sys.stderr,
        )
        return 1
    try:
        start_metadata(conf, ctx)
    except OSError as exc:
        meta = conf.metadata
        print(
            f"filemem-api: cannot listen on {meta.listen}:{meta.listen_port} ([metadata] "
            f"listen, listen_port): {exc}",
            file=sys.stderr,
        )
        return 1
    serve(build_app(conf, ctx), conf, sock, _announce)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    from sqlalchemy import exc as sa_exc

    try:
        return run(args)
    except (FilememError, sa_exc.SQLAlchemyError, ImportError) as exc:
        # ImportError: the database URL names a driver that is not installed.
        print(f"filemem-api: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
