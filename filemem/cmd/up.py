"""`filemem up`: API, scheduler, embedded Placement and this host's agent in one process."""

from __future__ import annotations

import argparse
import json
import logging
import secrets
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from oslo_config import cfg

from filemem.api.app import create_app
from filemem.cmd.api import build_context, listening_socket, url_of
from filemem.cmd.common import load_conf
from filemem.cmd.compute_api import CLIENT_FILE, ComputeApi
from filemem.cmd.http_server import server_config
from filemem.cmd.up_image import BUILD_HINT, TEST_IMAGE_DIR, TEST_IMAGE_NAME, find_built
from filemem.common.private_files import state_dir, write_private
from filemem.compute.agent_api import AgentApiClient
from filemem.compute.host import ComputeHost, startup_errors
from filemem.compute.host_check import check_host
from filemem.compute.reconcile.loop import ReconcileLoop
from filemem.compute.resource_sync import ResourceSyncLoop
from filemem.conf.api import AUTH_TOKEN
from filemem.conf.database import connection_url
from filemem.db import host_credentials, migrate
from filemem.db.session import Database
from filemem.exceptions import ConfigError

LOG = logging.getLogger("filemem.up")

DEFAULT_FLAVORS = (("m1.tiny", 256, 1), ("m1.small", 512, 1), ("m1.medium", 1024, 2))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    up = sub.add_parser(
        "up",
        help="run everything for one host in this process",
        description="Runs filemem-api (Compute API + scheduler), an embedded Placement and this "
        "host's filemem-compute agent in one process, with SQLite under [DEFAULT] state_path. "
        "Runs the startup checks first and refuses to start on errors. Prints the endpoint, "
        "never the token (a new one each run), and writes <state_path>/client.json (for "
        "`filemem server ...`) and "
        "<state_path>/clouds.yaml (for `openstack --os-cloud filemem ...`). Ctrl-C stops it; "
        "guests keep running and are picked up again by the next `filemem up`.",
    )
    up.add_argument("--port", type=int, help="API port (default [api] bind_port)")
    up.add_argument(
        "--ready-file", type=Path, help="write the endpoint here once everything runs (for scripts)"
    )
    up.set_defaults(func=cmd_up)


def _prepare_conf(args: argparse.Namespace) -> cfg.ConfigOpts:
    conf = load_conf(args)
    if conf.api.auth_strategy != AUTH_TOKEN:
        raise ConfigError(
            "[api] auth_strategy",
            "must be 'token' for `filemem up` (one host, its own admin token); run "
            "filemem-api and filemem-compute to serve behind Keystone",
        )
    # One host: a resize can only ever run in place (an explicit setting still wins).
    conf.set_default("allow_resize_to_same_host", True)
    # No metadata service runs beside `filemem up`: a config drive is how a guest's cloud-init
    # gets its key, user data and network (an explicit setting still wins).
    conf.set_default("force_config_drive", True)
    state = state_dir(Path(conf.state_path))
    if not conf.api.admin_token:
        # A new token each run: one that leaked (an old log, a copied client file) stops
        # working at the next start; the client files below are rewritten with the new one.
        token = secrets.token_hex(24)
        write_private(state / "admin_token", token)
        conf.set_override("admin_token", token, group="api")
    if args.port is not None:
        conf.set_override("bind_port", args.port, group="api")
    if conf.placement.endpoint:
        LOG.warning("[placement] endpoint is set: `filemem up` uses that Placement, not its own")
    return conf


def _agent_credential(database: Database, state: Path, host: str) -> str:
    """The secret of this host's credential, kept in <state>/agent_credential (0600) and
    reused while valid; a new one when it is missing or was revoked."""
    path = state / "agent_credential"
    if path.exists():
        secret = path.read_text().strip()
        with database.reader() as session:
            credential = host_credentials.find_valid(session, secret)
            if credential is not None and credential.host == host:
                return secret
    with database.session() as session:
        _, secret = host_credentials.create(session, host)
    write_private(path, secret)
    return secret


class _ThreadedServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the main thread owns signals
        return None


def _start_api(conf: cfg.ConfigOpts) -> tuple[str, Any, Any]:
    url = connection_url(conf)
    migrate.upgrade(url)
    ctx = build_context(conf, url)
    sock = listening_socket(conf.api.bind_host, conf.api.bind_port)
    server = _ThreadedServer(server_config(create_app(ctx), conf))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="api", daemon=True
    )
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the API did not start; see the log above")
        time.sleep(0.05)
    return url_of(sock), server, ctx


def _seed(api: ComputeApi) -> None:
    """Defaults that work: a few flavors and the test image, when the catalogue is empty."""
    if not api.call("GET", "/flavors")["flavors"]:
        for name, ram, vcpus in DEFAULT_FLAVORS:
            api.call(
                "POST",
                "/flavors",
                {"flavor": {"name": name, "ram": ram, "vcpus": vcpus, "disk": 0}},
            )
    names = {i["name"] for i in api.images("GET", "?limit=1000")["images"]}
    if TEST_IMAGE_NAME in names:
        return
    # The builder is test tooling (devtools/, not installed): `up` only registers its result.
    image = find_built(TEST_IMAGE_DIR)
    if image is None:
        LOG.info(
            "no test image in %s, so %s is not registered: run %s to build it",
            TEST_IMAGE_DIR,
            TEST_IMAGE_NAME,
            BUILD_HINT,
        )
        return
    api.images("POST", body=image.registration())


def _write_client_files(state: Path, endpoint: str, token: str) -> None:
    # host show reads the embedded Placement through the API: this process stays its only writer.
    write_private(
        state / CLIENT_FILE,
        json.dumps(
            {"endpoint": endpoint, "token": token, "placement_endpoint": f"{endpoint}/placement"}
        ),
    )
    # The openstack CLI checks for identity v3 first; the API serves that document itself. No
    # compute_api_version pin: the clients negotiate filemem's maximum (2.37). The network
    # endpoint is the built-in network's Neutron-shaped view (`--network NAME` resolves there).
    write_private(
        state / "clouds.yaml",
        "\n".join(
            [
                "clouds:",
                "  filemem:",
                "    auth_type: admin_token",
                "    auth:",
                f"      endpoint: {endpoint}/v2.1",
                f"      token: {token}",
                f"    identity_endpoint_override: {endpoint}/identity/v3",
                f"    compute_endpoint_override: {endpoint}/v2.1",
                f"    image_endpoint_override: {endpoint}/image",
                f"    network_endpoint_override: {endpoint}/network",
                "",
            ]
        ),
    )


def cmd_up(args: argparse.Namespace) -> int:
    conf = _prepare_conf(args)
    host = ComputeHost.from_conf(conf)
    errors = startup_errors(check_host(conf, host.driver))
    if errors:
        for line in errors:
            print(f"filemem up: error: {line}", file=sys.stderr)
        return 1
    endpoint, server, ctx = _start_api(conf)
    token = conf.api.admin_token
    # One embedded Placement per process: the agent shares the API's client.
    host = ComputeHost.from_conf(conf, driver=host.driver, client=ctx.placement)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stopper(stop))
    # The agent holds its host's credential, not the admin token: every `filemem up` runs the
    # same authorization a compute host does.
    agent_secret = _agent_credential(ctx.database, Path(conf.state_path), host.tracker.name)
    agent_client = AgentApiClient(endpoint, agent_secret)
    reconcile_loop = ReconcileLoop(host, agent_client, wait=5.0, stop=stop)
    reconcile_loop.heartbeat()
    _seed(ComputeApi(endpoint, token))
    state = Path(conf.state_path)
    _write_client_files(state, endpoint, token)
    threading.Thread(target=reconcile_loop.run, name="reconcile", daemon=True).start()
    resource_loop = ResourceSyncLoop.from_conf(
        host,
        stop,
        keep=reconcile_loop.desired_uuids,
        report_usage=reconcile_loop.report_memory_usage,
        moving=reconcile_loop.migrating_uuids,
        placed=reconcile_loop.placed_allocations,
        after_first_sync=reconcile_loop.heartbeat,
    )
    resource_loop.run_once()
    _announce(endpoint, state)
    if args.ready_file:
        write_private(args.ready_file, endpoint + "\n")
    try:
        resource_loop.run()
    finally:
        server.should_exit = True
    return 0


def _stopper(stop: threading.Event) -> Any:
    def on_signal(signum: int, _frame: FrameType | None) -> None:
        LOG.info("signal %d: stopping (guests keep running)", signum)
        stop.set()

    return on_signal


def _announce(endpoint: str, state: Path) -> None:
    """Where to reach it and where the token is: never the token, since this output often ends
    up in a log file others can read (a token is a secret, kept in 0600 files)."""
    print(f"filemem is up: API {endpoint}", flush=True)
    print(
        f"  token        in {state / CLIENT_FILE} and {state / 'admin_token'} (owner only; "
        "new each `filemem up`)",
        flush=True,
    )
    print(
        f"  filemem CLI  filemem --config-file ... server list   (reads {CLIENT_FILE})", flush=True
    )
    print(
        f"  openstack    OS_CLIENT_CONFIG_FILE={state / 'clouds.yaml'} openstack --os-cloud "
        "filemem server list",
        flush=True,
    )
