"""ApiContext: what every request handler needs (database, Placement, conductor, token, conf)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from filemem.api.change_feed import ChangeFeed
from filemem.api.console_limits import ConsoleLimits
from filemem.api.identity import DEFAULT_PROJECT_ID, DEFAULT_USER_ID, Authenticator
from filemem.conductor.servers import SchedulerProtocol, ServerConductor
from filemem.db.session import Database
from filemem.placement.client import PlacementClient

if TYPE_CHECKING:
    from oslo_config import cfg


@dataclass
class ApiContext:
    database: Database
    placement: PlacementClient
    scheduler: SchedulerProtocol
    admin_token: str
    conf: cfg.ConfigOpts | None = None
    public_endpoint: str = ""
    image_dirs: tuple[str, ...] = ("/var/lib/filemem/images",)
    service_down_time: float = 60.0
    project_id: str = DEFAULT_PROJECT_ID
    user_id: str = DEFAULT_USER_ID
    # nova's [DEFAULT] allow_resize_to_same_host: filemem only resizes in place.
    allow_resize_to_same_host: bool = False
    # nova's [api] enable_instance_password: adminPass in create and rebuild answers.
    enable_instance_password: bool = True
    # How often a waiting agent long-poll re-reads the changes table ([api]
    # long_poll_recheck_interval): the safety net when notifications are on.
    long_poll_interval: float = 5.0
    # [api] change_notifications: commits wake this process's long-polls of the changed hosts
    # (and, on PostgreSQL, the app's lifespan listens for other processes' commits).
    change_notifications: bool = True
    changes: ChangeFeed = field(default_factory=ChangeFeed)
    # Waiting console-output requests, woken by server uuid when an agent's answer commits
    # in this process, and their bounds ([api] max_console_requests*).
    console_answers: ChangeFeed = field(default_factory=ChangeFeed)
    console_limits: ConsoleLimits = field(default_factory=ConsoleLimits)
    # [api] build_timeout and build_cleanup_interval: the lifespan sweeps for builds an API
    # process abandoned (filemem.conductor.build_cleanup); None: no sweep (tests' apps).
    build_timeout: float | None = None
    build_cleanup_interval: float = 60.0
    # [api] client_body_timeout: seconds a request body may take to arrive.
    body_timeout: float = 30.0
    # Further token -> Caller authenticators after the admin token (Keystone, tests).
    authenticators: tuple[Authenticator, ...] = ()

    def __post_init__(self) -> None:
        if self.change_notifications:
            self.database.on_changes(self.changes.wake)

    @property
    def conductor(self) -> ServerConductor:
        return ServerConductor(self.database, self.placement, self.scheduler)

    @property
    def down_after(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.service_down_time)


def get_context(request: Request) -> ApiContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, ApiContext)
    return ctx
