"""Per-project data: access to private flavors, quota limits, and usage counted from instances."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import delete, func, select, text
from sqlalchemy.orm import Session

from filemem.db.models import Flavor, FlavorProject, Instance, Quota


@dataclass(frozen=True)
class Usage:
    """What a project's instance rows hold (a row being deleted still holds its resources)."""

    instances: int
    cores: int
    ram: int

    def as_dict(self) -> dict[str, int]:
        return {"instances": self.instances, "cores": self.cores, "ram": self.ram}


def flavor_projects(session: Session, flavor: Flavor) -> list[str]:
    rows = session.scalars(
        select(FlavorProject.project_id)
        .where(FlavorProject.flavor_id == flavor.id)
        .order_by(FlavorProject.project_id)
    )
    return list(rows)


def add_flavor_project(session: Session, flavor: Flavor, project_id: str) -> bool:
    """False when the project already has access."""
    if project_id in flavor_projects(session, flavor):
        return False
    session.add(FlavorProject(flavor_id=flavor.id, project_id=project_id))
    session.flush()
    return True


def remove_flavor_project(session: Session, flavor: Flavor, project_id: str) -> bool:
    """False when the project had no access."""
    result = session.execute(
        delete(FlavorProject).where(
            FlavorProject.flavor_id == flavor.id, FlavorProject.project_id == project_id
        )
    )
    return bool(getattr(result, "rowcount", 0))


def has_access(session: Session, flavor: Flavor, project_id: str) -> bool:
    return flavor.is_public or project_id in flavor_projects(session, flavor)


def get_quotas(session: Session, project_id: str) -> dict[str, int]:
    """The limits set for the project (resources without a row use the defaults)."""
    rows = session.scalars(select(Quota).where(Quota.project_id == project_id))
    return {row.resource: row.hard_limit for row in rows}


def set_quotas(session: Session, project_id: str, limits: Mapping[str, int]) -> None:
    current = {
        row.resource: row
        for row in session.scalars(select(Quota).where(Quota.project_id == project_id))
    }
    for resource, limit in limits.items():
        row = current.get(resource)
        if row is None:
            session.add(Quota(project_id=project_id, resource=resource, hard_limit=limit))
        else:
            row.hard_limit = limit
    session.flush()


def delete_quotas(session: Session, project_id: str) -> None:
    session.execute(delete(Quota).where(Quota.project_id == project_id))


def usage(session: Session, project_id: str) -> Usage:
    """nova counts instances, cores and ram from the project's instance rows."""
    row = session.execute(
        select(
            func.count(Instance.uuid),
            func.coalesce(func.sum(Instance.vcpus), 0),
            func.coalesce(func.sum(Instance.memory_mb), 0),
        ).where(Instance.project_id == project_id)
    ).one()
    return Usage(int(row[0]), int(row[1]), int(row[2]))


def lock_usage(session: Session, project_id: str) -> None:
    """Serialize the transactions that count a project's usage and then grow it, until the
    caller's transaction ends. SQLite writers are already serial (BEGIN IMMEDIATE); on
    PostgreSQL, READ COMMITTED lets two counts miss each other's uncommitted rows, so two
    resizes (or a resize and a create) could both pass the quota: a transaction-scoped
    advisory lock per project closes that."""
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"filemem-quota:{project_id}".encode()).digest()
    key = int.from_bytes(digest[:8], "big", signed=True)
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
