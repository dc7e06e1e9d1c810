"""Query functions of filemem's database; each takes a Session and leaves commit to the caller."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from filemem.common import states
from filemem.db import change_events, ports
from filemem.db.models import (
    Change,
    Flavor,
    FlavorExtraSpec,
    FlavorProject,
    Image,
    Instance,
    Service,
    utcnow,
)
from filemem.exceptions import FilememError


class DuplicateEntry(FilememError):
    """A unique column (flavor name or id, service host) already holds that value."""


# -- services ------------------------------------------------------------------------------


def get_service_by_host(session: Session, host: str) -> Service | None:
    """The compute service registered for `host`, or None."""
    return session.scalars(select(Service).where(Service.host == host)).first()


def get_service_by_provider(session: Session, provider_uuid: str) -> Service | None:
    """The compute service whose resource provider this is (one at most), or None."""
    return session.scalars(select(Service).where(Service.provider_uuid == provider_uuid)).first()


def get_service(session: Session, service_id: int) -> Service | None:
    """The service with this id, or None."""
    return session.get(Service, service_id)


def list_services(session: Session) -> list[Service]:
    """Every registered service, oldest first (nova's os-services order)."""
    return list(session.scalars(select(Service).order_by(Service.id)))


def upsert_service(session: Session, host: str, values: Mapping[str, Any]) -> Service:
    """Register the host's service or refresh it; either way it was seen just now."""
    now = utcnow()
    service = get_service_by_host(session, host)
    if service is None:
        try:
            with session.begin_nested():
                service = Service(
                    host=host, created_at=now, last_seen_at=now, disabled=False, **values
                )
                session.add(service)
        except IntegrityError:
            # Another API process registered the same host between our read and write.
            service = get_service_by_host(session, host)
            if service is None:
                raise
    for key, value in values.items():
        setattr(service, key, value)
    service.last_seen_at = now
    service.updated_at = now
    session.flush()
    return service


def touch_service(session: Session, host: str) -> None:
    """Record a heartbeat: the host's service was seen just now."""
    session.execute(update(Service).where(Service.host == host).values(last_seen_at=utcnow()))


def is_up(service: Service, down_after: dt.timedelta, now: dt.datetime | None = None) -> bool:
    """Whether the service reported within `down_after` ([api] service_down_time)."""
    if service.last_seen_at is None:
        return False
    return (now or utcnow()) - service.last_seen_at <= down_after


def live_services(session: Session, down_after: dt.timedelta) -> list[Service]:
    """Enabled services heard from within `down_after` and not forced down: where new guests
    may go."""
    since = utcnow() - down_after
    query = select(Service).where(
        Service.disabled.is_(False),
        Service.forced_down.is_(False),
        Service.last_seen_at >= since,
    )
    return list(session.scalars(query.order_by(Service.id)))


# -- flavors -------------------------------------------------------------------------------


def get_flavor(session: Session, flavorid: str) -> Flavor | None:
    """The flavor with this flavorid (the API's id), or None."""
    return session.scalars(select(Flavor).where(Flavor.flavorid == flavorid)).first()


def list_flavors(
    session: Session,
    *,
    min_ram: int = 0,
    min_disk: int = 0,
    is_public: bool | None = None,
    project_id: str | None = None,
) -> list[Flavor]:
    """Flavors with at least min_ram MiB and min_disk GiB, by flavorid; with is_public true
    and a project, the private flavors that project was given access to as well (nova's)."""
    query = select(Flavor).where(Flavor.memory_mb >= min_ram, Flavor.root_gb >= min_disk)
    if is_public and project_id is not None:
        granted = select(FlavorProject.flavor_id).where(FlavorProject.project_id == project_id)
        query = query.where(or_(Flavor.is_public.is_(True), Flavor.id.in_(granted)))
    elif is_public is not None:
        query = query.where(Flavor.is_public.is_(is_public))
    return list(session.scalars(query.order_by(Flavor.flavorid)))


def create_flavor(
    session: Session, values: Mapping[str, Any], extra_specs: Mapping[str, str] | None = None
) -> Flavor:
    """Insert a flavor; DuplicateEntry when its name or id is taken."""
    taken = session.scalars(
        select(Flavor).where(
            (Flavor.name == values["name"]) | (Flavor.flavorid == values["flavorid"])
        )
    ).first()
    if taken is not None:
        raise DuplicateEntry(_duplicate_reason(taken, values))
    flavor = Flavor(created_at=utcnow(), **values)
    flavor.extra_specs = [FlavorExtraSpec(key=k, value=v) for k, v in (extra_specs or {}).items()]
    try:
        with session.begin_nested():
            session.add(flavor)
    except IntegrityError as exc:
        raise DuplicateEntry(
            f"Flavor with name {values['name']} or ID {values['flavorid']} already exists."
        ) from exc
    return flavor


def _duplicate_reason(taken: Flavor, values: Mapping[str, Any]) -> str:
    if taken.name == values["name"]:
        return f"Flavor with name {values['name']} already exists."
    return f"Flavor with ID {values['flavorid']} already exists."


def delete_flavor(session: Session, flavor: Flavor) -> None:
    """Delete the flavor and its extra specs (instances keep their copies)."""
    session.delete(flavor)
    session.flush()


def set_extra_specs(session: Session, flavor: Flavor, specs: Mapping[str, str]) -> None:
    """Create or overwrite the given keys; other keys stay."""
    existing = {spec.key: spec for spec in flavor.extra_specs}
    for key, value in specs.items():
        if key in existing:
            existing[key].value = value
        else:
            flavor.extra_specs.append(FlavorExtraSpec(key=key, value=value))
    session.flush()


def delete_extra_spec(session: Session, flavor: Flavor, key: str) -> bool:
    """Remove one extra spec; False when the flavor did not have it."""
    for spec in flavor.extra_specs:
        if spec.key == key:
            flavor.extra_specs.remove(spec)
            session.flush()
            return True
    return False


# -- images --------------------------------------------------------------------------------


def create_image(session: Session, values: Mapping[str, Any]) -> Image:
    """Add an image to the local catalogue and return it."""
    image = Image(created_at=utcnow(), **values)
    session.add(image)
    session.flush()
    return image


def get_image(session: Session, image_id: str) -> Image | None:
    """The image with this id, or None."""
    return session.get(Image, image_id)


def list_images(session: Session, ids: Collection[str] | None = None) -> list[Image]:
    """Catalogue images, all or those whose id is in `ids`, newest first (as glance lists)."""
    query = select(Image)
    if ids is not None:
        query = query.where(Image.id.in_(list(ids)))
    return list(session.scalars(query.order_by(Image.created_at.desc(), Image.id.desc())))


# -- instances -----------------------------------------------------------------------------


def create_instance(session: Session, values: Mapping[str, Any]) -> Instance:
    """Insert an instance row (unscheduled: no host, so no agent sees it yet) and return it."""
    now = utcnow()
    instance = Instance(created_at=now, updated_at=now, **values)
    session.add(instance)
    session.flush()
    return instance


def get_instance(session: Session, uuid: str, *, fresh: bool = False) -> Instance | None:
    """The row; `fresh` re-reads it even when this session already holds it."""
    return session.get(Instance, uuid, populate_existing=fresh)


def list_instances(session: Session, *, host: str | None = None) -> list[Instance]:
    """Every instance (or the host's), newest first (nova's default sort: created_at desc,
    then id desc); the servers list pages in SQL instead (filemem.db.instance_list)."""
    query = select(Instance)
    if host is not None:
        query = query.where(Instance.host == host)
    return list(session.scalars(query.order_by(Instance.created_at.desc(), Instance.uuid.desc())))


def update_instance(
    session: Session,
    uuid: str,
    values: Mapping[str, Any],
    *,
    expect_vm_states: Iterable[str] | None = None,
    expect_task_states: Iterable[str | None] | None = None,
    expect_not_deleting: bool = False,
    expect_host: bool = False,
    notify: bool = True,
) -> Instance | None:
    """Compare-and-swap update; None when the row is gone or not in an expected state.

    The conditions are in the UPDATE itself, so two API processes racing on one instance
    cannot both win. With `notify`, the host's agent is told through a change row.
    """
    query = update(Instance).where(Instance.uuid == uuid)
    if expect_vm_states is not None:
        query = query.where(Instance.vm_state.in_(list(expect_vm_states)))
    if expect_task_states is not None:
        wanted = list(expect_task_states)
        named = [state for state in wanted if state is not None]
        condition: ColumnElement[bool] = Instance.task_state.in_(named)
        if None in wanted:
            condition = condition | Instance.task_state.is_(None)
        query = query.where(condition)
    if expect_not_deleting:
        query = query.where(Instance.deleted_requested.is_(False))
    if expect_host:
        query = query.where(Instance.host.is_not(None))
    result = session.execute(
        query.values(updated_at=utcnow(), **values).execution_options(synchronize_session=False)
    )
    if getattr(result, "rowcount", 0) != 1:
        return None
    instance = session.get(Instance, uuid, populate_existing=True)
    if instance is not None and notify and instance.host:
        append_change(session, instance.host, uuid)
    return instance


def fail_scheduling(session: Session, uuid: str, message: str) -> Instance | None:
    """ERROR with a fault (code 500) if it is still scheduling; None when it is not (any
    more): the scheduler's refusal and the sweep for abandoned builds both end a build so.
    Its ports go too (nova deallocates the networks of a build that ends in ERROR), so a
    failed build never holds an address."""
    values = {
        "vm_state": states.ERROR,
        "task_state": None,
        "fault_message": message,
        "fault_code": 500,
    }
    failed = update_instance(
        session, uuid, values, expect_task_states=[states.SCHEDULING], notify=False
    )
    if failed is not None:
        ports.delete_of_instance(session, uuid)
    return failed


def delete_instance(session: Session, uuid: str, *, only_unscheduled: bool = False) -> bool:
    """Delete the row; with only_unscheduled, only while it has no host (False otherwise)."""
    query = delete(Instance).where(Instance.uuid == uuid)
    if only_unscheduled:
        query = query.where(Instance.host.is_(None))
    result = session.execute(query.execution_options(synchronize_session=False))
    return bool(getattr(result, "rowcount", 0))


def set_memory_usage(session: Session, host: str, usage: Mapping[str, Mapping[str, Any]]) -> int:
    """Store each instance's reported working set, only for instances on `host`; how many.

    No change row: a usage report must not wake the host's agent (it is not desired state).
    """
    instances = session.scalars(
        select(Instance).where(Instance.host == host, Instance.uuid.in_(list(usage)))
    ).all()
    for instance in instances:
        instance.memory_usage = dict(usage[instance.uuid])
    return len(instances)


def store_console_output(
    session: Session, uuid: str, output: str, requested_at: dt.datetime | None
) -> None:
    """The console tail an agent read; the request is cleared only when it is still the one
    answered (`requested_at`). One UPDATE: a newer request stored meanwhile by another API
    process is never cleared."""
    session.execute(
        update(Instance)
        .where(Instance.uuid == uuid)
        .values(
            console_output=output,
            console_output_at=utcnow(),
            console_requested_at=case(
                (Instance.console_requested_at == requested_at, None),
                else_=Instance.console_requested_at,
            ),
        )
        .execution_options(synchronize_session=False)
    )


def count_instances_by_host(session: Session) -> dict[str, int]:
    """How many instance rows each host holds (for os-hypervisors)."""
    query = (
        select(Instance.host, func.count())
        .where(Instance.host.is_not(None))
        .group_by(Instance.host)
    )
    return {str(host): int(count) for host, count in session.execute(query)}


# -- changes (the agents' long-poll cursor) ------------------------------------------------


def append_change(session: Session, host: str, instance_uuid: str) -> int:
    """Bump the host's change cursor so its agent's long-poll returns; the new id. Waiting
    long-polls are woken when the transaction commits (change_events)."""
    change = Change(host=host, instance_uuid=instance_uuid, created_at=utcnow())
    session.add(change)
    session.flush()
    change_events.record(session, host)
    # Only the newest id per host is ever compared against, so older rows can go.
    session.execute(
        delete(Change)
        .where(Change.host == host, Change.id < change.id)
        .execution_options(synchronize_session=False)
    )
    return change.id


def latest_change(session: Session, host: str) -> int:
    """The host's newest change id (0 when none): the agents' watch cursor."""
    value = session.scalar(select(func.max(Change.id)).where(Change.host == host))
    return int(value or 0)
