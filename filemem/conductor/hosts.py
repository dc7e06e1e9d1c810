"""The scheduler's host source: live, enabled compute services from the database."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence

from oslo_config import cfg

from filemem.db import aggregates as db_aggregates
from filemem.db import api as db_api
from filemem.db.session import Database
from filemem.placement.client import PlacementClient
from filemem.scheduler import Scheduler, SchedulerSettings
from filemem.scheduler.filters.aggregate_extra_specs import merge_aggregate_metadata
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


def aggregate_metadata_source(
    database: Database,
) -> Callable[[], Mapping[str, Mapping[str, str]]]:
    """Host -> the merged metadata of its aggregates, read when a flavor pins to aggregates."""

    def read() -> dict[str, dict[str, str]]:
        with database.reader() as session:
            memberships = db_aggregates.for_hosts(
                session, [service.host for service in db_api.list_services(session)]
            )
            return {
                host: merge_aggregate_metadata(
                    {row.key: row.value for row in aggregate.metadata_} for aggregate in aggregates
                )
                for host, aggregates in memberships.items()
            }

    return read


def make_scheduler(
    conf: cfg.ConfigOpts, placement: PlacementClient, database: Database
) -> Scheduler:
    """The scheduler configured by [scheduler], over the live services of [api]."""
    down_after = dt.timedelta(seconds=conf.api.service_down_time)
    hosts = host_source(database, down_after)
    # [scheduler] is registered by filemem.conf once the scheduler's options are there.
    settings = SchedulerSettings.from_conf(conf) if "scheduler" in conf else SchedulerSettings()
    return Scheduler(
        placement, hosts, settings, host_aggregate_metadata=aggregate_metadata_source(database)
    )
