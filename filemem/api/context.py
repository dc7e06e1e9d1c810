"""ApiContext: what every request handler needs (database, Placement, conductors, token, conf)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import Request

from filemem.api.change_feed import ChangeFeed
from filemem.api.console_limits import ConsoleLimits
from filemem.api.identity import DEFAULT_PROJECT_ID, DEFAULT_USER_ID, Authenticator
from filemem.conductor.live_migration import LiveMigrationConductor
from filemem.conductor.network import NetworkDriver, NoNetwork
from filemem.conductor.resize import ResizeConductor
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
    # Uploaded images' data (<state_path>/image-store; None: uploads refused) and its
    # per-image bound ([api] image_size_cap).
    image_store_dir: str | None = None
    image_size_cap: int = 1024**4
    service_down_time: float = 60.0
    project_id: str = DEFAULT_PROJECT_ID
    user_id: str = DEFAULT_USER_ID
    # nova's [DEFAULT] allow_resize_to_same_host: filemem only resizes in place.
    allow_resize_to_same_host: bool = False
    # nova's [DEFAULT] force_config_drive: every new server gets a config drive.
    force_config_drive: bool = False
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
    # The conductors, built once here with all their collaborators (the scheduler above all:
    # a conductor built without it would skip the filters); handlers use only these.
    conductor: ServerConductor = field(init=False)
    resize_conductor: ResizeConductor = field(init=False)
    live_migration_conductor: LiveMigrationConductor = field(init=False)
    # Where instances' ports come from ([network] driver); none: servers have no networks.
    network: NetworkDriver = field(default_factory=NoNetwork)

    def __post_init__(self) -> None:
        self.use_scheduler(self.scheduler)
        if self.change_notifications:
            self.database.on_changes(self.changes.wake)

    def use_scheduler(self, scheduler: SchedulerProtocol) -> None:
        """Set the scheduler and rebuild every conductor around it, so none keeps another."""
        self.scheduler = scheduler
        self.conductor = ServerConductor(self.database, self.placement, scheduler)
        self.resize_conductor = ResizeConductor(self.database, self.placement, scheduler)
        self.live_migration_conductor = LiveMigrationConductor(
            self.database, self.placement, scheduler, self.down_after
        )

    @property
    def down_after(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.service_down_time)


def get_context(request: Request) -> ApiContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, ApiContext)
    return ctx
