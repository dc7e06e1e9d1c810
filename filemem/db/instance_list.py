"""The servers list in SQL: nova's filters in the query, keyset pages on (created_at, uuid)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    column,
    exists,
    false,
    func,
    literal,
    literal_column,
    not_,
    or_,
    select,
)
from sqlalchemy.orm import Session
from sqlalchemy.types import String

from filemem.common import states
from filemem.db.models import Instance
from filemem.exceptions import FilememError

# Rows of (uuid, name, created_at) read at a time while a name pattern picks a page's rows:
# enough that a page of sparse matches costs few round trips, small enough to stay light.
SCAN_CHUNK = 1000

# nova's default sort: newest first, uuid to break ties (instances created in one second).
ORDER = (Instance.created_at.desc(), Instance.uuid.desc())

NameTest = Callable[[str], bool]
SelectT = TypeVar("SelectT", bound=Select[*tuple[Any, ...]])


@dataclass(frozen=True)
class TagFilter:
    """nova's tag filters: tags (all of), tags-any, not-tags (not all of), not-tags-any."""

    all_of: frozenset[str] = frozenset()
    any_of: frozenset[str] = frozenset()
    not_all_of: frozenset[str] = frozenset()
    not_any_of: frozenset[str] = frozenset()

    def matches(self, tags: Iterable[str] | None) -> bool:
        have = set(tags or ())
        if self.all_of and not self.all_of <= have:
            return False
        if self.any_of and not self.any_of & have:
            return False
        if self.not_all_of and self.not_all_of <= have:
            return False
        return not (self.not_any_of and self.not_any_of & have)


class MarkerNotFound(FilememError):
    """The marker is no server of this listing (nova's 400 "marker [x] not found")."""


@dataclass(frozen=True)
class InstanceFilters:
    """nova's servers filters that SQL answers exactly (name is a regular expression: only a
    literal part of it reaches SQL, as `name_prefix` or `name_part`, a pre-filter)."""

    project_id: str | None = None
    host: str | None = None
    flavor_id: str | None = None
    image_id: str | None = None
    status: str | None = None
    tags: TagFilter | None = None
    changes_since: dt.datetime | None = None
    name_prefix: str | None = None
    name_part: str | None = None


def status_clause(status: str) -> ColumnElement[bool]:
    """The rows whose API status (states.status_of) is `status`, as a condition."""
    clauses: list[ColumnElement[bool]] = []
    for vm_state, (tasks, only) in states.states_of(status).items():
        if only:
            clauses.append(
                and_(Instance.vm_state == vm_state, Instance.task_state.in_(sorted(tasks)))
            )
        elif tasks:
            others = or_(Instance.task_state.is_(None), Instance.task_state.not_in(sorted(tasks)))
            clauses.append(and_(Instance.vm_state == vm_state, others))
        else:
            clauses.append(Instance.vm_state == vm_state)
    if status == states.UNKNOWN:
        clauses.append(Instance.vm_state.not_in(states.MAPPED_VM_STATES))
    return or_(*clauses) if clauses else false()


def _has_tag(dialect: str, tags: frozenset[str]) -> ColumnElement[bool]:
    """Whether the row's JSON list of tags holds one of `tags`, in the database's own JSON
    functions (json_each in SQLite, json_array_elements_text in PostgreSQL)."""
    if dialect == "postgresql":
        # A JSON null (a server never tagged) is no array: PostgreSQL would refuse it.
        array = case(
            (func.json_typeof(Instance.tags) == "array", Instance.tags),
            else_=literal_column("'[]'::json"),
        )
        elements = func.json_array_elements_text(array).table_valued("value")
    else:
        elements = func.json_each(Instance.tags).table_valued("value")
    value = column("value", String)
    return exists(select(literal(1)).select_from(elements).where(value.in_(sorted(tags))))


def tags_clauses(dialect: str, tags: TagFilter) -> list[ColumnElement[bool]]:
    """TagFilter.matches as conditions: all of, any of, not all of, none of."""
    clauses = [_has_tag(dialect, frozenset({tag})) for tag in sorted(tags.all_of)]
    if tags.any_of:
        clauses.append(_has_tag(dialect, tags.any_of))
    if tags.not_all_of:
        every = [_has_tag(dialect, frozenset({tag})) for tag in sorted(tags.not_all_of)]
        clauses.append(not_(and_(*every)))
    if tags.not_any_of:
        clauses.append(not_(_has_tag(dialect, tags.not_any_of)))
    return clauses


def where(dialect: str, filters: InstanceFilters) -> list[ColumnElement[bool]]:
    """Every filter as a condition of the instances query."""
    equal = {
        Instance.project_id: filters.project_id,
        Instance.host: filters.host,
        Instance.flavor_id: filters.flavor_id,
        Instance.image_id: filters.image_id,
    }
    clauses = [col == value for col, value in equal.items() if value is not None]
    if filters.status is not None:
        clauses.append(status_clause(filters.status))
    if filters.tags is not None:
        clauses += tags_clauses(dialect, filters.tags)
    if filters.changes_since is not None:
        clauses.append(Instance.updated_at >= filters.changes_since)
    if filters.name_prefix:
        clauses.append(Instance.display_name.startswith(filters.name_prefix, autoescape=True))
    if filters.name_part:
        clauses.append(Instance.display_name.contains(filters.name_part, autoescape=True))
    return clauses


Key = tuple[dt.datetime, str]


def _after(key: Key) -> ColumnElement[bool]:
    """The rows after `key` in ORDER (older, or as old with a smaller uuid)."""
    created_at, uuid = key
    later = or_(
        Instance.created_at < created_at,
        and_(Instance.created_at == created_at, Instance.uuid < uuid),
    )
    # The redundant bound lets the database seek the index to the marker, not scan to it.
    return and_(Instance.created_at <= created_at, later)


def _filtered(session: Session, query: SelectT, filters: InstanceFilters) -> SelectT:
    return query.where(*where(session.get_bind().dialect.name, filters))


def marker_key(
    session: Session, filters: InstanceFilters, marker: str, name: NameTest | None
) -> Key:
    """The marker's sort key; MarkerNotFound unless it is a server the same listing shows."""
    query = select(Instance.created_at, Instance.uuid, Instance.display_name)
    row = session.execute(_filtered(session, query, filters).where(Instance.uuid == marker)).first()
    if row is None or (name is not None and not name(row.display_name)):
        raise MarkerNotFound(f"marker [{marker}] not found")
    return row.created_at, row.uuid


def page(
    session: Session,
    filters: InstanceFilters,
    *,
    limit: int,
    marker: str | None = None,
    name: NameTest | None = None,
) -> list[Instance]:
    """Up to `limit` servers after `marker`, newest first, each passing `name` too.

    Without `name` this is one indexed query with LIMIT. With it, the (uuid, name, created_at)
    of the filtered rows are read SCAN_CHUNK at a time in order and tested until the page is
    full or the rows end: memory stays bounded by a chunk and a page, the time by the rows
    the SQL filters leave (a pattern's literal prefix or part has already cut those)."""
    after = marker_key(session, filters, marker, name) if marker is not None else None
    if limit <= 0:
        return []
    if name is None:
        query = _filtered(session, select(Instance), filters)
        if after is not None:
            query = query.where(_after(after))
        return list(session.scalars(query.order_by(*ORDER).limit(limit)))
    uuids = _matching_uuids(session, filters, name, limit, after)
    if not uuids:
        return []
    rows = {
        row.uuid: row for row in session.scalars(select(Instance).where(Instance.uuid.in_(uuids)))
    }
    return [rows[uuid] for uuid in uuids if uuid in rows]


def _matching_uuids(
    session: Session, filters: InstanceFilters, name: NameTest, limit: int, after: Key | None
) -> list[str]:
    keys = _filtered(
        session, select(Instance.created_at, Instance.uuid, Instance.display_name), filters
    )
    found: list[str] = []
    while len(found) < limit:
        query = keys if after is None else keys.where(_after(after))
        chunk = session.execute(query.order_by(*ORDER).limit(SCAN_CHUNK)).all()
        found += [row.uuid for row in chunk if name(row.display_name)][: limit - len(found)]
        if len(chunk) < SCAN_CHUNK:
            break
        after = (chunk[-1].created_at, chunk[-1].uuid)
    return found
