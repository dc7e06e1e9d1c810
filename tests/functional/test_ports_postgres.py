"""Two API processes' allocations racing on PostgreSQL: the unique (network_id, ip_address)
makes the loser take the next address, never the same one."""

from __future__ import annotations

import threading
import time
import uuid as uuidlib
from collections.abc import Iterator

import pytest
from sqlalchemy import text

from filemem.conductor.network import AUTO, NetworkInfo
from filemem.conductor.network.builtin import BuiltinNetwork, subnet_id_of
from filemem.db import api as db_api
from filemem.db import migrate
from filemem.db import ports as db_ports
from filemem.db.session import Database
from tests.functional.postgres import PostgresCluster

NETWORK_ID = str(uuidlib.uuid4())
NETWORK = NetworkInfo(NETWORK_ID, "private", subnet_id_of(NETWORK_ID), "10.55.0.0/24", "10.55.0.1")


@pytest.fixture(scope="module")
def database() -> Iterator[Database]:
    with PostgresCluster() as url:
        migrate.upgrade(url)
        db = Database(url)
        assert db.engine.dialect.name == "postgresql"
        yield db
        db.dispose()


def instance(database: Database, project: str) -> str:
    uuid = str(uuidlib.uuid4())
    values = {
        "uuid": uuid,
        "display_name": "vm",
        "project_id": project,
        "user_id": "u",
        "flavor_id": "1",
        "flavor_name": "f",
        "vcpus": 1,
        "memory_mb": 256,
        "root_gb": 0,
        "image_id": str(uuidlib.uuid4()),
        "vm_state": "building",
        "task_state": "scheduling",
    }
    with database.session() as session:
        db_api.create_instance(session, values)
    return uuid


def waiting_on_a_lock(database: Database) -> bool:
    with database.engine.connect() as conn:
        query = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
        return bool(conn.execute(text(query)).scalar())


def test_the_loser_of_a_race_takes_the_next_address(database: Database) -> None:
    driver = BuiltinNetwork(NETWORK)
    first, second = instance(database, "project-a"), instance(database, "project-b")
    holding, release = threading.Event(), threading.Event()
    got: dict[str, str | None] = {}
    errors: list[BaseException] = []

    def allocate(uuid: str, hold: bool) -> None:
        try:
            with database.session() as session:
                (port,) = driver.allocate_for_instance(session, uuid, AUTO)
                got[uuid] = port.ip_address
                if hold:
                    # Uncommitted: the other transaction reads .2 as free and its insert of
                    # .2 waits on this one's unique key.
                    holding.set()
                    assert release.wait(120)
        except BaseException as exc:
            errors.append(exc)
            holding.set()

    a = threading.Thread(target=allocate, args=(first, True))
    a.start()
    assert holding.wait(120)
    b = threading.Thread(target=allocate, args=(second, False))
    b.start()
    deadline = time.monotonic() + 120
    while not waiting_on_a_lock(database):
        assert time.monotonic() < deadline, "the second insert never waited on the first"
        time.sleep(0.05)
    release.set()
    a.join(120)
    b.join(120)
    assert not errors, errors
    assert got == {first: "10.55.0.2", second: "10.55.0.3"}
    with database.reader() as session:
        assert db_ports.used_addresses(session, NETWORK_ID) == {"10.55.0.2", "10.55.0.3"}


def test_one_address_cannot_be_stored_twice(database: Database) -> None:
    owner = instance(database, "project-c")

    def add(mac: str) -> None:
        db_ports.add(
            session,
            port_id=str(uuidlib.uuid4()),
            network_id=NETWORK_ID,
            instance_uuid=owner,
            mac_address=mac,
            ip_address="10.55.0.99",
        )

    with database.session() as session:
        add("fa:16:3e:00:00:01")
        with pytest.raises(db_ports.AddressTaken):
            add("fa:16:3e:00:00:02")
    with database.reader() as session:
        assert db_ports.holder_of(session, NETWORK_ID, "10.55.0.99") == owner
