"""The real Placement WSGI app built once per process, and a transport that calls it in-process."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import webob
from oslo_config import cfg

from filemem.common.private_files import private_sqlite
from filemem.exceptions import PlacementError
from filemem.placement.client import PlacementClient, Response

LOG = logging.getLogger(__name__)

# Under [api] auth_strategy = noauth2 the token names the user; "admin" gets the admin role.
NOAUTH_ADMIN_TOKEN = "admin"  # noqa: S105 - not a secret: noauth2's fixed admin user name

WSGIApp = Callable[..., Any]

# placement.db_api.configure() is run-once per interpreter and the enginefacade, policy
# enforcer and trait/resource-class sync flags are process globals, so one database per process.
_STATE_LOCK = threading.Lock()
_configured_connection: str | None = None
_apps: dict[str, WSGIApp] = {}
# Shared by every EmbeddedTransport: there is only one app (and one SQLite writer) per process.
_REQUEST_LOCK = threading.Lock()


def sqlite_connection(state_path: Path) -> str:
    return f"sqlite:///{Path(state_path).resolve() / 'placement.sqlite'}"


def placement_config(
    connection: str | None,
    *,
    auth_strategy: str = "noauth2",
    config_files: Sequence[str] = (),
) -> cfg.ConfigOpts:
    """A fresh placement ConfigOpts; `connection`, when given, wins over the config files."""
    from placement import conf as placement_conf

    conf = cfg.ConfigOpts()
    placement_conf.register_opts(conf)
    conf.set_default("auth_strategy", auth_strategy, group="api")
    if connection:
        # A default satisfies the required-option check at parse time; the override after it
        # makes the explicit value win over any config file.
        conf.set_default("connection", connection, group="placement_database")
    try:
        conf([], project="placement", default_config_files=list(config_files))
    except cfg.RequiredOptError as exc:
        raise PlacementError(f"no Placement database configured: {exc}") from exc
    if connection:
        conf.set_override("connection", connection, group="placement_database")
    return conf


def configure_database(conf: cfg.ConfigOpts, *, migrate: bool = True) -> None:
    """Point placement's process-wide engine at conf's database (once) and migrate it."""
    from placement import db_api
    from placement.db.sqlalchemy import migration

    global _configured_connection
    connection = str(conf.placement_database.connection)
    with _STATE_LOCK:
        if _configured_connection is None:
            if getattr(db_api.configure, "called", False):
                raise PlacementError(
                    "the Placement database was already configured in this process by "
                    "someone else; filemem cannot point it at " + _redact(connection)
                )
            # Its tables hold every host's and guest's allocations: the owner's only.
            private_sqlite(connection)
            db_api.configure(conf)
            _configured_connection = connection
            if migrate:
                migration.upgrade("head")
        elif _configured_connection != connection:
            raise PlacementError(
                f"this process already serves Placement from {_redact(_configured_connection)}; "
                f"one Placement database per process, so {_redact(connection)} needs its own "
                "process (or share the first one)"
            )


def _redact(connection: str) -> str:
    """A connection URL without its password, for messages."""
    head, sep, tail = connection.rpartition("@")
    if not sep or "://" not in head:
        return connection
    scheme, _, userinfo = head.partition("://")
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{tail}"


def load_app(conf: cfg.ConfigOpts) -> WSGIApp:
    """configure + migrate, then placement.deploy.loadapp (syncs os-traits and resource classes)."""
    from placement import deploy

    configure_database(conf)
    connection = str(conf.placement_database.connection)
    with _STATE_LOCK:
        app = _apps.get(connection)
        if app is None:
            app = deploy.loadapp(conf)
            _apps[connection] = app
    return app


def build_embedded_app(state_path: Path) -> WSGIApp:
    """The Placement app on <state_path>/placement.sqlite (created and migrated if needed)."""
    state_path = Path(state_path)
    state_path.mkdir(parents=True, exist_ok=True)
    return load_app(placement_config(sqlite_connection(state_path)))


class EmbeddedTransport:
    """Calls the in-process app with webob; one request at a time, as SQLite wants one writer."""

    def __init__(self, app: WSGIApp, endpoint: str = "embedded Placement") -> None:
        self._app = app
        self.endpoint = endpoint

    def request(
        self, method: str, path: str, json_body: dict[str, Any] | None, headers: Mapping[str, str]
    ) -> Response:
        req = webob.Request.blank(path, method=method)
        req.headers.update(headers)
        req.headers.setdefault("X-Auth-Token", NOAUTH_ADMIN_TOKEN)
        if json_body is not None:
            req.json_body = json_body
            req.content_type = "application/json"
        with _REQUEST_LOCK:
            resp = req.get_response(self._app)
        body: dict[str, Any] | None = None
        if resp.body and "json" in (resp.content_type or ""):
            parsed = resp.json_body
            body = parsed if isinstance(parsed, dict) else {"value": parsed}
        return Response(int(resp.status_int), body, dict(resp.headers))


class EmbeddedPlacement:
    """Real Placement in this process, its SQLite database under `state_path`.

    The app is built once per process and shared: a second instance on the same path reuses
    it; one on another path raises PlacementError (placement keeps its database globally).
    """

    def __init__(self, state_path: Path) -> None:
        self.state_path = Path(state_path)
        self.connection = sqlite_connection(self.state_path)
        self.app = build_embedded_app(self.state_path)
        self.transport = EmbeddedTransport(self.app, f"embedded Placement ({self.connection})")

    def client(self, **kwargs: Any) -> PlacementClient:
        """A PlacementClient on this app; kwargs go to PlacementClient."""
        return PlacementClient(self.transport, **kwargs)
