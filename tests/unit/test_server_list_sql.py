"""GET /servers in SQL: the next link of a full page, the rows a page loads, flavors' links."""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, insert

from filemem.db.models import Instance
from tests.unit import servers_app
from tests.unit.servers_app import ServersApp

app = servers_app.app

EPOCH = dt.datetime(2026, 1, 1)


def insert_instances(app: ServersApp, count: int, **values: Any) -> list[str]:
    """`count` rows straight into the table (newest last), as a big cloud's would be."""
    uuids = [str(uuidlib.uuid4()) for _ in range(count)]
    rows = [
        {
            "uuid": uuid,
            "display_name": values.get("display_name", f"bulk-{i}"),
            "project_id": values.get("project_id", app.ctx.project_id),
            "user_id": app.ctx.user_id,
            "flavor_id": app.flavor,
            "flavor_name": "f",
            "vcpus": 1,
            "memory_mb": 256,
            "root_gb": 0,
            "extra_specs": {},
            "image_id": app.image,
            "metadata": {},
            "vm_state": values.get("vm_state", "active"),
            "power_state": 1,
            "created_at": EPOCH + dt.timedelta(seconds=i),
            "updated_at": EPOCH + dt.timedelta(seconds=i),
            "tags": values.get("tags"),
        }
        for i, uuid in enumerate(uuids)
    ]
    with app.ctx.database.session() as session:
        session.execute(insert(Instance), rows)
    return uuids


@contextmanager
def loaded_instances() -> Iterator[list[str]]:
    """The uuids of every Instance row the ORM builds meanwhile."""
    loaded: list[str] = []

    def on_load(target: Instance, _context: object) -> None:
        loaded.append(target.uuid)

    event.listen(Instance, "load", on_load)
    try:
        yield loaded
    finally:
        event.remove(Instance, "load", on_load)


@contextmanager
def statements(app: ServersApp) -> Iterator[list[str]]:
    """The SQL statements the API's engine runs meanwhile."""
    seen: list[str] = []
    engine = app.ctx.database.engine

    def on_execute(*args: Any) -> None:
        seen.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


def test_a_full_last_page_has_its_next_link(app: ServersApp) -> None:
    newest_first = list(reversed(insert_instances(app, 3)))
    for path in ("/servers", "/servers/detail"):
        body = app.call("GET", path, params={"limit": 3}).json()
        assert [s["id"] for s in body["servers"]] == newest_first
        # nova links whenever a page is full, even when no server follows.
        (link,) = body["servers_links"]
        assert link["rel"] == "next"
        assert f"/v2.1{path}?" in link["href"] and f"marker={newest_first[-1]}" in link["href"]
        after = app.call("GET", path, params={"limit": 3, "marker": newest_first[-1]}).json()
        assert after == {"servers": []}


def test_a_page_that_is_not_full_has_no_link(app: ServersApp) -> None:
    insert_instances(app, 3)
    body = app.call("GET", "/servers", params={"limit": 4}).json()
    assert len(body["servers"]) == 3 and "servers_links" not in body


def test_paging_walks_every_server_once_in_nova_order(app: ServersApp) -> None:
    uuids = insert_instances(app, 25)
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 7}
    while True:
        body = app.call("GET", "/servers/detail", params=params).json()
        seen += [s["id"] for s in body["servers"]]
        if "servers_links" not in body:
            break
        params["marker"] = seen[-1]
    assert seen == list(reversed(uuids))


def test_a_page_loads_only_its_own_rows(app: ServersApp) -> None:
    insert_instances(app, 300)
    with loaded_instances() as loaded, statements(app) as sql:
        response = app.call("GET", "/servers/detail", params={"limit": 10})
    assert response.status_code == 200 and len(response.json()["servers"]) == 10
    assert len(loaded) == 10, f"{len(loaded)} rows loaded for a page of 10"
    instance_reads = [s for s in sql if "FROM instances" in s]
    assert len(instance_reads) == 1 and "LIMIT" in instance_reads[0]


def test_a_name_filter_loads_only_the_matches_of_its_page(app: ServersApp) -> None:
    insert_instances(app, 200)
    insert_instances(app, 5, display_name="needle")
    insert_instances(app, 200)
    with loaded_instances() as loaded:
        body = app.call("GET", "/servers", params={"name": "eed", "limit": 3}).json()
    assert [s["name"] for s in body["servers"]] == ["needle"] * 3
    assert len(loaded) == 3 and "servers_links" in body
    rest = app.call("GET", "/servers", params={"name": "eed", "marker": body["servers"][-1]["id"]})
    assert len(rest.json()["servers"]) == 2


def test_status_and_tags_filter_in_the_query(app: ServersApp) -> None:
    insert_instances(app, 50, vm_state="stopped", tags=["a"])
    wanted = insert_instances(app, 4, vm_state="active", tags=["a", "b"])
    insert_instances(app, 50, vm_state="active", tags=["b"])
    params = {"status": "active", "tags": "a,b", "limit": 10}
    with loaded_instances() as loaded:
        body = app.call("GET", "/servers", "2.26", params=params).json()
    assert [s["id"] for s in body["servers"]] == list(reversed(wanted))
    assert len(loaded) == 4


def test_a_marker_outside_the_filters_is_not_found(app: ServersApp) -> None:
    (other,) = insert_instances(app, 1, display_name="other")
    insert_instances(app, 2, display_name="mine")
    response = app.call("GET", "/servers", params={"name": "mine", "marker": other})
    assert response.status_code == 400
    assert response.json()["badRequest"]["message"] == f"marker [{other}] not found"


def test_flavors_have_their_next_link(app: ServersApp) -> None:
    for path in ("/flavors", "/flavors/detail"):
        body = app.call("GET", path, params={"limit": 1}).json()
        (flavor,) = body["flavors"]
        (link,) = body["flavors_links"]
        assert link["rel"] == "next" and f"/v2.1{path}?" in link["href"]
        assert f"marker={flavor['id']}" in link["href"]
        assert "flavors_links" not in app.call("GET", path, params={"limit": 1000}).json()


def test_changes_since_bounds_updated_at(app: ServersApp) -> None:
    uuids = insert_instances(app, 10)  # updated_at EPOCH + 0..9 s
    since = {"changes-since": "2026-01-01T00:00:07Z"}
    body = app.call("GET", "/servers", params=since).json()
    assert [s["id"] for s in body["servers"]] == uuids[:6:-1]
    offset = {"changes-since": "2026-01-01T02:00:08+02:00"}
    body = app.call("GET", "/servers/detail", params=offset).json()
    assert [s["id"] for s in body["servers"]] == uuids[:7:-1]


def test_bad_changes_since_is_a_400_naming_it(app: ServersApp) -> None:
    response = app.call("GET", "/servers/detail", params={"changes-since": "yesterday"})
    assert response.status_code == 400
    assert "changes-since" in response.json()["badRequest"]["message"]
