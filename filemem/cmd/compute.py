"""filemem-compute: the per-host agent keeping this host's capacity and guests true in Placement."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from oslo_config import cfg

from filemem import __version__
from filemem.cmd.agent_token import agent_token
from filemem.cmd.common import add_config_args, load_conf
from filemem.compute.agent_api import (
    AgentApiClient,
    ApiRefused,
    ApiUnavailable,
    RegistrationRefused,
)
from filemem.compute.host import ComputeHost, startup_errors
from filemem.compute.host_check import check_host
from filemem.compute.reconcile.loop import ReconcileLoop
from filemem.compute.resource_sync import ResourceSyncLoop
from filemem.conf import compute as compute_opts
from filemem.exceptions import FilememError

LOG = logging.getLogger("filemem.compute")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="filemem-compute",
        description="Runs the startup checks (the same as `filemem host check`) and refuses to "
        "start on any error; then reports this host's resource provider, inventory and traits "
        "to Placement, heals guests' allocations and writes metrics, at start and every "
        "[DEFAULT] update_resources_interval seconds. With [DEFAULT] api_endpoint set it also "
        "registers with that filemem-api and runs the guests it assigns to this host, making "
        "libvirt match (guests keep running while the API, Placement or libvirtd is down). "
        "Stops on SIGTERM or SIGINT; guests keep running.",
    )
    parser.add_argument("--version", action="version", version=f"filemem {__version__}")
    parser.add_argument("--debug", action="store_true", help="log debug messages")
    add_config_args(parser)
    return parser


def _install_signal_handlers(stop: threading.Event) -> None:
    def on_signal(signum: int, _frame: FrameType | None) -> None:
        LOG.info("signal %d received; stopping after the current cycle", signum)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)


def run(args: argparse.Namespace) -> int:
    conf = load_conf(args)
    host = ComputeHost.from_conf(conf)
    errors = startup_errors(check_host(conf, host.driver))
    if errors:
        for line in errors:
            print(f"filemem-compute: error: {line}", file=sys.stderr)
        print(
            f"filemem-compute: refusing to start: {len(errors)} startup check(s) failed",
            file=sys.stderr,
        )
        return 1
    listen = compute_opts.metrics_listen(conf.metrics_listen)
    if listen is not None:
        host.metrics.serve(*listen)
        LOG.info("Prometheus metrics at http://%s:%d/metrics", *listen)
    stop = threading.Event()
    _install_signal_handlers(stop)
    reconcile_loop = _reconcile_loop(conf, host, stop)
    if reconcile_loop is not None and not _first_registration(reconcile_loop):
        return 1
    keep = reconcile_loop.desired_uuids if reconcile_loop else tuple
    resource_loop = ResourceSyncLoop.from_conf(
        host,
        stop,
        keep=keep,
        report_usage=reconcile_loop.report_memory_usage if reconcile_loop else None,
        moving=reconcile_loop.migrating_uuids if reconcile_loop else tuple,
        placed=reconcile_loop.placed_allocations if reconcile_loop else dict,
        after_first_sync=reconcile_loop.heartbeat if reconcile_loop else None,
    )
    if reconcile_loop is not None:
        threading.Thread(target=reconcile_loop.run, name="reconcile", daemon=True).start()
    resource_loop.run()
    if reconcile_loop is not None and reconcile_loop.refused is not None:
        _refuse(reconcile_loop.refused)
        return 1
    return 0


def _refuse(reason: str) -> None:
    print(f"filemem-compute: error: the API refused this host: {reason}", file=sys.stderr)
    print("filemem-compute: refusing to start", file=sys.stderr)


def _first_registration(loop: ReconcileLoop) -> bool:
    """Register before syncing (so the first sync reports the aggregates' ratio); False when
    the API refuses this host. An API that is down is retried by the reconcile loop."""
    try:
        loop.heartbeat()
    except RegistrationRefused as exc:
        _refuse(exc.reason)
        return False
    except ApiRefused as exc:
        if exc.status in (401, 403):
            # A wrong, revoked or other host's credential does not heal by retrying.
            _refuse(f"{exc.reason} (check [DEFAULT] api_credential_file / api_token)")
            return False
        LOG.warning("first registration failed (%s); the reconcile loop retries", exc)
    except ApiUnavailable as exc:
        LOG.warning("first registration failed (%s); the reconcile loop retries", exc)
    return True


def _reconcile_loop(
    conf: cfg.ConfigOpts, host: ComputeHost, stop: threading.Event
) -> ReconcileLoop | None:
    """The reconcile loop, when [DEFAULT] api_endpoint names a filemem-api to follow."""
    if not conf.api_endpoint:
        LOG.info("[DEFAULT] api_endpoint is empty: keeping Placement true, running no API guests")
        return None
    client = AgentApiClient(
        ",".join(compute_opts.api_endpoints(conf.api_endpoint)),
        agent_token(conf.api_token, conf.api_credential_file),
    )
    return ReconcileLoop(
        host,
        client,
        wait=float(conf.api_watch_seconds),
        retry_interval=float(conf.placement_retry_interval),
        stop=stop,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return run(args)
    except FilememError as exc:
        print(f"filemem-compute: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
