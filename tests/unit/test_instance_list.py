"""filemem.db.instance_list on SQLite (and, through test_server_list_postgres, PostgreSQL):
each SQL filter selects what its Python rule selects, pages follow nova's order."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid as uuidlib
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from filemem.api.name_filter import literal_hints, name_matcher
from filemem.common import states
from filemem.db import instance_list
from filemem.db.instance_list import TagFilter
from filemem.db.models import Base, Instance

VM_STATES = (*states.VM_STATES, "shelved")
TASK_STATES = (None, *states.TASK_STATES, "unknown-task")
TAGS = ("a", "b", "c")
TAG_SETS: tuple[list[str] | None, ...] = (
    None,
    *([*combo] for n in range(len(TAGS) + 1) for combo in itertools.combinations(TAGS, n)),
)


def _row(i: int, **values: Any) -> Instance:
    fields: dict[str, Any] = {
        "uuid": str(uuidlib.UUID(int=i)),
        "display_name": f"vm-{i}",
        "project_id": "p",
        "user_id": "u",
        "flavor_id": "f",
        "flavor_name": "f",
        "vcpus": 1,
        "memory_mb": 1,
        "root_gb": 0,
        "image_id": "i",
        "vm_state": "active",
        # Ties on created_at: the uuid orders them.
        "created_at": dt.datetime(2026, 1, 1) + dt.timedelta(seconds=i // 3),
    }
    return Instance(**(fields | values))


@pytest.fixture
def session() -> Iterator[Session]:
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as db:
        yield db
    engine.dispose()


def _uuids(session: Session, filters: instance_list.InstanceFilters) -> set[str]:
    clauses = instance_list.where(session.get_bind().dialect.name, filters)
    return set(session.scalars(select(Instance.uuid).where(*clauses)))


def test_status_in_sql_is_status_of(session: Session) -> None:
    pairs = list(itertools.product(VM_STATES, TASK_STATES))
    session.add_all(_row(i, vm_state=v, task_state=t) for i, (v, t) in enumerate(pairs))
    session.flush()
    rows = session.scalars(select(Instance)).all()
    for status in (*states.STATUSES, states.UNKNOWN, "NO-SUCH-STATUS"):
        want = {r.uuid for r in rows if states.status_of(r.vm_state, r.task_state) == status}
        got = _uuids(session, instance_list.InstanceFilters(status=status))
        assert got == want, status


def test_tags_in_sql_are_tag_filter_matches(session: Session) -> None:
    session.add_all(_row(i, tags=tags) for i, tags in enumerate(TAG_SETS))
    session.flush()
    rows = session.scalars(select(Instance)).all()
    choices = [frozenset(), frozenset({"a"}), frozenset({"a", "b"})]
    for sets in itertools.product(choices, repeat=4):
        tags = TagFilter(*sets)
        want = {r.uuid for r in rows if tags.matches(r.tags)}
        assert _uuids(session, instance_list.InstanceFilters(tags=tags)) == want, tags


def test_pages_follow_nova_order_across_ties(session: Session) -> None:
    session.add_all(_row(i) for i in range(10))
    session.flush()
    everything = instance_list.page(session, instance_list.InstanceFilters(), limit=100)
    keys = [(r.created_at, r.uuid) for r in everything]
    assert keys == sorted(keys, reverse=True) and len(keys) == 10
    walked: list[str] = []
    marker = None
    while page := instance_list.page(
        session, instance_list.InstanceFilters(), limit=3, marker=marker
    ):
        walked += [r.uuid for r in page]
        marker = walked[-1]
    assert walked == [r.uuid for r in everything]


def test_a_name_scan_reads_past_a_chunk(session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(instance_list, "SCAN_CHUNK", 4)
    session.add_all(_row(i, display_name="x" if i % 5 else "hit") for i in range(30))
    session.flush()
    test = name_matcher("^hit$")
    found = instance_list.page(session, instance_list.InstanceFilters(), limit=4, name=test)
    assert [r.uuid for r in found] == [str(uuidlib.UUID(int=i)) for i in (25, 20, 15, 10)]
    rest = instance_list.page(
        session, instance_list.InstanceFilters(), limit=4, marker=found[-1].uuid, name=test
    )
    assert [r.uuid for r in rest] == [str(uuidlib.UUID(int=i)) for i in (5, 0)]
    with pytest.raises(instance_list.MarkerNotFound, match=r"marker \[.*\] not found"):
        instance_list.page(
            session,
            instance_list.InstanceFilters(),
            limit=4,
            marker=str(uuidlib.UUID(int=1)),
            name=test,
        )


@pytest.mark.parametrize(
    ("pattern", "hints"),
    [
        ("^web-", ("web-", None)),
        ("^web-1.*", ("web-1", None)),
        ("^webs?", ("web", None)),
        ("^web+", ("web", None)),
        ("^a{2}", (None, None)),
        ("web", (None, "web")),
        ("web.", (None, None)),
        ("^web|db", (None, None)),
        ("(?i)^web", (None, None)),
        ("^(web)", (None, None)),
        ("^\\.", (None, None)),
        ("", (None, None)),
    ],
)
def test_literal_hints(pattern: str, hints: tuple[str | None, str | None]) -> None:
    assert literal_hints(pattern) == hints


@pytest.mark.parametrize("pattern", ["^web-", "^webs?", "web", "^WEB", "^w%b", "_", "^a/b"])
def test_a_hint_never_drops_a_match(session: Session, pattern: str) -> None:
    names = ["web-1", "webx", "we", "WEB-1", "w%b", "wxb", "a_b", "a/b", "my-web", "_"]
    session.add_all(_row(i, display_name=name) for i, name in enumerate(names))
    session.flush()
    prefix, part = literal_hints(pattern)
    hinted = instance_list.InstanceFilters(name_prefix=prefix, name_part=part)
    test = name_matcher(pattern)
    by_uuid = {r.uuid: r.display_name for r in session.scalars(select(Instance))}
    want = {uuid for uuid, name in by_uuid.items() if test(name)}
    assert want <= _uuids(session, hinted)
