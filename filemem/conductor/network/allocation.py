"""Ports for new instances, in their create transaction; a full network ends the build."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from filemem.conductor.network import NetworkDriver, NetworkRequest, NoMoreFixedIps
from filemem.db import api as db_api


def build_aborted(instance_uuid: str, error: NoMoreFixedIps) -> str:
    """nova's fault when a build cannot get its networks (BuildAbortException)."""
    return (
        f"Build of instance {instance_uuid} aborted: Failed to allocate the network(s) with "
        f"error {error}, not rescheduling."
    )


def allocate_or_fail(
    driver: NetworkDriver,
    session: Session,
    instance_uuid: str,
    requested: Sequence[NetworkRequest],
) -> bool:
    """Allocate the instance's ports; True when it got them all. A network with no address
    left puts it in ERROR with nova's fault instead (as nova's build does, not a 4xx): it is
    not scheduled, holds no port, and the rest of the request goes on."""
    try:
        driver.allocate_for_instance(session, instance_uuid, requested)
    except NoMoreFixedIps as exc:
        driver.deallocate_for_instance(session, instance_uuid)
        db_api.fail_scheduling(session, instance_uuid, build_aborted(instance_uuid, exc))
        return False
    return True
