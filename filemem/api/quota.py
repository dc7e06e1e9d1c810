"""Quotas at the API: a project's limits ([quota] defaults, its own quota set), counted from the
database, checked at create (under the project's lock, with nova's recheck) and resize."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fastapi import Request
from sqlalchemy.orm import Session

from filemem.api.context import get_context
from filemem.api.errors import Forbidden
from filemem.common import quota as rules
from filemem.conf import quota as quota_conf
from filemem.db import api as db_api
from filemem.db import projects as db_projects
from filemem.db.models import Flavor, Instance


def default_limits(request: Request) -> rules.Limits:
    """[quota] instances, cores, ram and metadata_items (nova's names and defaults)."""
    conf = get_context(request).conf
    if conf is None:
        return rules.Limits(
            **{o.name: o.default for o in quota_conf.OPTS if o.name in rules.SETTABLE}
        )
    group = conf.quota
    return rules.Limits(group.instances, group.cores, group.ram, group.metadata_items)


def project_limits(request: Request, session: Session, project_id: str) -> rules.Limits:
    overrides = db_projects.get_quotas(session, project_id)
    return rules.effective_limits(default_limits(request), overrides)


def check_metadata_items(
    request: Request, session: Session, project_id: str, metadata: Mapping[str, str]
) -> None:
    """403 when one server of the project would hold more metadata items than its quota."""
    try:
        rules.check_metadata_items(project_limits(request, session, project_id), len(metadata))
    except rules.OverQuota as exc:
        raise Forbidden(str(exc)) from exc


def allowed_instances(
    request: Request, session: Session, project_id: str, flavor: Flavor, low: int, high: int
) -> int:
    """How many servers of `flavor` the project may add now (nova's count at create)."""
    limits = project_limits(request, session, project_id)
    used = db_projects.usage(session, project_id).as_dict()
    try:
        return rules.instances_allowed(limits, used, flavor.vcpus, flavor.memory_mb, low, high)
    except rules.OverQuota as exc:
        raise Forbidden(str(exc)) from exc


def _recheck_enabled(request: Request) -> bool:
    conf = get_context(request).conf
    return True if conf is None else bool(conf.quota.recheck_quota)


def recheck(request: Request, project_id: str, instances: Sequence[Instance]) -> None:
    """nova's recheck_quota: after the rows are committed, count again; when a concurrent
    create in another API process pushed the project over, undo ours and answer 403 (both
    racers may lose, neither passes the quota)."""
    if not instances or not _recheck_enabled(request):
        return
    ctx = get_context(request)
    with ctx.database.session() as session:
        limits = project_limits(request, session, project_id)
        used = db_projects.usage(session, project_id).as_dict()
        overs = [
            r
            for r in rules.RESOURCES
            if limits.get(r) != rules.UNLIMITED and used[r] > limits.get(r)
        ]
        if not overs:
            return
        for instance in instances:
            db_api.delete_instance(session, instance.uuid, only_unscheduled=True)
    first = instances[0]
    count = len(instances)
    mine = {"instances": count, "cores": count * first.vcpus, "ram": count * first.memory_mb}
    before = {r: used[r] - mine[r] for r in rules.RESOURCES}
    try:
        rules.instances_allowed(limits, before, first.vcpus, first.memory_mb, count, count)
    except rules.OverQuota as exc:
        raise Forbidden(str(exc)) from exc
    raise Forbidden("Quota exceeded for instances: a concurrent request used the quota")


def check_resize(request: Request, instance: Instance, flavor: Flavor) -> rules.Limits:
    """403 when growing to `flavor` passes the project's cores or ram quota (nova's upsize);
    the limits, for the conductor's second count under the project's lock."""
    with get_context(request).database.reader() as session:
        limits = project_limits(request, session, instance.project_id)
        used = db_projects.usage(session, instance.project_id).as_dict()
    try:
        old, new = (instance.vcpus, instance.memory_mb), (flavor.vcpus, flavor.memory_mb)
        rules.check_resize(limits, used, old, new)
    except rules.OverQuota as exc:
        raise Forbidden(str(exc)) from exc
    return limits
