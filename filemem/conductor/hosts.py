"""The scheduler's host source: live, enabled compute services from the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

from oslo_config import cfg

from filemem.db import api as db_api
from filemem.db.session import Database
from filemem.placement.client import PlacementClient
from filemem.scheduler import Scheduler, SchedulerSettings
from filemem.scheduler.host_state import HostRecord


def host_source(database: Database, down_after: dt.timedelta) -> Callable[[], Sequence[HostRecord]]:
    """A callable the scheduler calls for the hosts that may take new guests right now."""

    def live_hosts() -> list[HostRecord]:
        with database.reader() as session:
            return [
                HostRecord(
                    host=service.host,
                    provider_uuid=service.provider_uuid,
                    disabled=service.disabled,
                )
                for service in db_api.live_services(session, down_after)
                if service.provider_uuid
            ]

    return live_hosts


def make_scheduler(
    conf: cfg.ConfigOpts, placement: PlacementClient, database: Database
) -> Scheduler:
    """The scheduler configured by [scheduler], over the live services of [api]."""
    down_after = dt.timedelta(seconds=conf.api.service_down_time)
    hosts = host_source(database, down_after)
    # [scheduler] is registered by filemem.conf once the scheduler's options are there.
    settings = SchedulerSettings.from_conf(conf) if "scheduler" in conf else SchedulerSettings()
    return Scheduler(placement, hosts, settings)
