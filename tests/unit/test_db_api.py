"""Query functions on a real SQLite file: services, flavors, instances, changes, races."""

from __future__ import annotations

import datetime as dt
import threading
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from filemem.db import api as db_api
from filemem.db import migrate
from filemem.db.models import utcnow
from filemem.db.session import Database


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'filemem.sqlite'}"
    migrate.upgrade(url)
    db = Database(url)
    yield db
    db.dispose()


def flavor_values(name: str = "small", flavorid: str = "1") -> dict[str, Any]:
    return {
        "flavorid": flavorid,
        "name": name,
        "vcpus": 1,
        "memory_mb": 256,
        "root_gb": 0,
        "is_public": True,
        "description": None,
    }


def instance_values(host: str | None = "host-1", **extra: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "uuid": str(uuidlib.uuid4()),
        "display_name": "vm",
        "project_id": "p",
        "user_id": "u",
        "flavor_id": "1",
        "flavor_name": "small",
        "vcpus": 1,
        "memory_mb": 256,
        "root_gb": 0,
        "extra_specs": {"hw:mem_page_size": "large"},
        "image_id": str(uuidlib.uuid4()),
        "metadata_": {"k": "v"},
        "host": host,
        "vm_state": "active",
        "task_state": None,
        "power_state": 1,
        "deleted_requested": False,
    }
    values.update(extra)
    return values


def test_service_upsert_registers_once_and_refreshes(database: Database) -> None:
    values = {
        "binary": "filemem-compute",
        "provider_uuid": str(uuidlib.uuid4()),
        "file_backed": True,
        "file_backed_memory_mb": 4096,
    }
    with database.session() as session:
        first = db_api.upsert_service(session, "host-1", values)
    with database.session() as session:
        second = db_api.upsert_service(session, "host-1", {**values, "file_backed": False})
    assert first.id == second.id
    with database.reader() as session:
        services = db_api.list_services(session)
    assert [(s.host, s.file_backed) for s in services] == [("host-1", False)]


def test_live_services_leave_out_disabled_and_silent_hosts(database: Database) -> None:
    with database.session() as session:
        for host in ("up", "disabled", "silent"):
            # A provider belongs to one host (unique): each has its own.
            values = {"binary": "filemem-compute", "provider_uuid": str(uuidlib.uuid4())}
            db_api.upsert_service(session, host, values)
        disabled = db_api.get_service_by_host(session, "disabled")
        silent = db_api.get_service_by_host(session, "silent")
        assert disabled is not None and silent is not None
        disabled.disabled = True
        silent.last_seen_at = utcnow() - dt.timedelta(minutes=5)
    with database.reader() as session:
        live = db_api.live_services(session, dt.timedelta(seconds=60))
    assert [service.host for service in live] == ["up"]


def test_flavor_names_and_ids_are_unique(database: Database) -> None:
    with database.session() as session:
        db_api.create_flavor(session, flavor_values(), {"hw:cpu_policy": "shared"})
    with pytest.raises(db_api.DuplicateEntry, match="name small"), database.session() as session:
        db_api.create_flavor(session, flavor_values(flavorid="2"))
    with pytest.raises(db_api.DuplicateEntry, match="ID 1"), database.session() as session:
        db_api.create_flavor(session, flavor_values(name="other"))


def test_extra_specs_set_overwrite_delete_and_cascade(database: Database) -> None:
    with database.session() as session:
        created = db_api.create_flavor(session, flavor_values(), {"a": "1"})
        db_api.set_extra_specs(session, created, {"a": "2", "b": "3"})
    with database.session() as session:
        flavor = db_api.get_flavor(session, "1")
        assert flavor is not None and flavor.specs() == {"a": "2", "b": "3"}
        assert db_api.delete_extra_spec(session, flavor, "a")
        assert not db_api.delete_extra_spec(session, flavor, "a")
    with database.session() as session:
        again = db_api.get_flavor(session, "1")
        assert again is not None and again.specs() == {"b": "3"}
        db_api.delete_flavor(session, again)
    with database.reader() as session:
        count = (
            session.connection().exec_driver_sql("SELECT count(*) FROM flavor_extra_specs").scalar()
        )
    assert count == 0


def test_update_is_compare_and_swap_and_notifies_the_host(database: Database) -> None:
    with database.session() as session:
        instance = db_api.create_instance(session, instance_values())
    with database.session() as session:
        assert db_api.latest_change(session, "host-1") == 0
        done = db_api.update_instance(
            session,
            instance.uuid,
            {"task_state": "powering-off"},
            expect_vm_states=["active"],
            expect_task_states=[None],
        )
        assert done is not None and done.task_state == "powering-off"
        again = db_api.update_instance(
            session,
            instance.uuid,
            {"task_state": "powering-off"},
            expect_vm_states=["active"],
            expect_task_states=[None],
        )
        assert again is None
        assert db_api.latest_change(session, "host-1") > 0
    with database.reader() as session:
        stored = db_api.get_instance(session, instance.uuid)
        assert stored is not None
        assert stored.extra_specs == {"hw:mem_page_size": "large"}
        assert stored.metadata_ == {"k": "v"}


def test_only_one_of_many_racing_writers_wins(database: Database) -> None:
    with database.session() as session:
        uuid = db_api.create_instance(session, instance_values()).uuid
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def stop() -> None:
        barrier.wait()
        with database.session() as session:
            wins.append(
                db_api.update_instance(
                    session,
                    uuid,
                    {"task_state": "powering-off"},
                    expect_vm_states=["active"],
                    expect_task_states=[None],
                )
                is not None
            )

    threads = [threading.Thread(target=stop) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 7 + [True]


def test_delete_only_unscheduled_spares_a_scheduled_row(database: Database) -> None:
    with database.session() as session:
        scheduled = db_api.create_instance(session, instance_values()).uuid
        unscheduled = db_api.create_instance(session, instance_values(host=None)).uuid
    with database.session() as session:
        assert not db_api.delete_instance(session, scheduled, only_unscheduled=True)
        assert db_api.delete_instance(session, unscheduled, only_unscheduled=True)
    with database.reader() as session:
        assert db_api.get_instance(session, scheduled) is not None
        assert db_api.get_instance(session, unscheduled) is None
        assert db_api.count_instances_by_host(session) == {"host-1": 1}


def test_changes_keep_only_the_newest_per_host(database: Database) -> None:
    with database.session() as session:
        ids = [db_api.append_change(session, "host-1", str(uuidlib.uuid4())) for _ in range(5)]
        db_api.append_change(session, "host-2", str(uuidlib.uuid4()))
    with database.reader() as session:
        assert db_api.latest_change(session, "host-1") == ids[-1]
        rows = (
            session.connection()
            .exec_driver_sql("SELECT count(*) FROM changes WHERE host = 'host-1'")
            .scalar()
        )
    assert rows == 1


def test_images_filter_by_ids(database: Database) -> None:
    with database.session() as session:
        made = [
            db_api.create_image(
                session,
                {
                    "id": str(uuidlib.uuid4()),
                    "name": f"img{i}",
                    "kind": "kernel",
                    "kernel_path": "/boot/vmlinuz",
                    "initrd_path": None,
                    "cmdline": "",
                    "disk_path": None,
                    "disk_format": None,
                },
            ).id
            for i in range(3)
        ]
    with database.reader() as session:
        assert {i.id for i in db_api.list_images(session, made[:2])} == set(made[:2])
        assert len(db_api.list_images(session)) == 3


def test_memory_usage_is_stored_only_for_the_reporting_hosts_instances(database: Database) -> None:
    with database.session() as session:
        mine = db_api.create_instance(session, instance_values(host="h1")).uuid
        other = db_api.create_instance(session, instance_values(host="h2")).uuid
        stored = db_api.set_memory_usage(
            session,
            "h1",
            {
                mine: {"nominal_bytes": 1, "sampled_at": "now"},
                other: {"nominal_bytes": 2, "sampled_at": "now"},
            },
        )
    assert stored == 1
    with database.reader() as session:
        assert db_api.get_instance(session, mine).memory_usage == {  # type: ignore[union-attr]
            "nominal_bytes": 1,
            "sampled_at": "now",
        }
        assert db_api.get_instance(session, other).memory_usage is None  # type: ignore[union-attr]
