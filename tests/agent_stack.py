"""One host's agent talking to the real API app in-process: SQLite, the agent's own HTTP client
(through a TestClient), the reconcile loop, any HypervisorDriver, embedded Placement.

The API side of an action is played by writing what its handler writes (an action record, then
task_state and the columns), so the agent side is tested before, and apart from, the handlers.
"""

from __future__ import annotations

import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from fastapi.testclient import TestClient

from filemem import conf as filemem_conf
from filemem.api.app import create_app
from filemem.api.context import ApiContext
from filemem.common.resources import guest_resources
from filemem.compute.agent_api import AgentApiClient
from filemem.compute.host import ComputeHost
from filemem.compute.reconcile.loop import ReconcileLoop
from filemem.db import api as db_api
from filemem.db import instance_actions, migrate
from filemem.db.models import Instance
from filemem.db.session import Database
from filemem.placement.client import PlacementClient
from filemem.virt.driver import HypervisorDriver

TOKEN = "unit-test-token-0123456789abcdef"
# The agent's client sends a timeout with every call; TestClient warns that it ignores it.
IGNORE_TIMEOUT_WARNING = "ignore:You should not use the 'timeout' argument"


class _NoScheduler:
    def select_and_claim(self, spec: Any) -> Any:
        raise AssertionError("nothing is scheduled in these tests")

    def select_and_claim_many(self, specs: Any) -> Any:
        raise AssertionError("nothing is scheduled in these tests")

    def invalidate_hosts(self) -> None:
        pass

    def refusal_in_place(self, spec: Any, provider_uuid: str) -> str | None:
        return None  # the agent's resize is under test here, not the scheduler's filters


D = TypeVar("D", bound=HypervisorDriver)


@dataclass
class Stack(Generic[D]):
    database: Database
    http: TestClient
    driver: D
    host: ComputeHost
    loop: ReconcileLoop
    image_id: str
    placement: PlacementClient  # the API's client (the agent's is host.client)

    @property
    def hostname(self) -> str:
        return self.host.tracker.name

    def converge(self) -> None:
        self.loop.run_once(None)

    def boot(self, memory_mb: int = 256, **columns: Any) -> str:
        """An instance row as the API writes it (`columns` added), claimed, then spawned."""
        uuid = str(uuidlib.uuid4())
        with self.database.session() as session:
            db_api.create_instance(
                session,
                {
                    "uuid": uuid,
                    "display_name": "vm",
                    "project_id": "p1",
                    "user_id": "u1",
                    "flavor_id": "1",
                    "flavor_name": "small",
                    "vcpus": 1,
                    "memory_mb": memory_mb,
                    "root_gb": 0,
                    "extra_specs": {},
                    "image_id": self.image_id,
                    "metadata_": {},
                    "host": self.hostname,
                    "vm_state": "building",
                    "task_state": "spawning",
                    "power_state": 0,
                    "deleted_requested": False,
                    **columns,
                },
            )
            instance_actions.record_action(
                session, uuid, "create", request_id="req-create", project_id="p1", user_id="u1"
            )
        # The scheduler's claim: the API owns the instance's allocation, the agent only spawns.
        resources = guest_resources(memory_mb, 1)
        self.placement.claim(uuid, self.host.tracker.provider_uuid, resources, "p1", "u1")
        self.converge()
        assert self.instance(uuid).vm_state == "active"
        return uuid

    def act(self, uuid: str, action: str, **values: Any) -> None:
        """What an action handler does: an action record, then the columns (agent notified)."""
        with self.database.session() as session:
            instance_actions.record_action(
                session, uuid, action, request_id=f"req-{action}", project_id="p1", user_id="u1"
            )
            assert db_api.update_instance(session, uuid, values) is not None

    def instance(self, uuid: str) -> Instance:
        with self.database.reader() as session:
            instance = db_api.get_instance(session, uuid)
            assert instance is not None
            session.expunge(instance)
            return instance

    def events(self, uuid: str) -> list[tuple[str, str, str | None, str | None, bool]]:
        """(action, event, result, host, has traceback) of every event, oldest first."""
        with self.database.reader() as session:
            actions = sorted(instance_actions.list_actions(session, uuid), key=lambda a: a.id)
            return [
                (a.action, e.event, e.result, e.host, e.traceback is not None)
                for a in actions
                for e in a.events
            ]

    def last_event(self, uuid: str) -> tuple[str, str, str | None, str | None, bool]:
        return self.events(uuid)[-1]

    def allocations(self) -> dict[str, dict[str, int]]:
        return self.host.client.get_provider_allocations(self.host.tracker.provider_uuid)


def build_stack(
    tmp_path: Path,
    state_path: Path,
    driver: D,
    placement: PlacementClient,
    image: dict[str, Any],
    file_backed_memory_mb: int = 2048,
    api_placement: PlacementClient | None = None,
) -> Stack[D]:
    """The API app on a fresh SQLite database, and an agent for `driver` (whose state_path is
    `state_path`), its provider synced; `image` is the catalogue entry instances boot from.
    `api_placement` is the API's own Placement client (default: the agent's)."""
    api_placement = api_placement or placement
    url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    migrate.upgrade(url)
    database = Database(url)
    ctx = ApiContext(
        database=database,
        placement=api_placement,
        scheduler=_NoScheduler(),
        admin_token=TOKEN,
        long_poll_interval=0.01,
    )
    http = TestClient(create_app(ctx), base_url="http://api", headers={"X-Auth-Token": TOKEN})
    api = AgentApiClient("http://api", TOKEN)
    api._http = http  # the agent's real client, through the app in-process

    config = tmp_path / "filemem.conf"
    config.write_text(
        f"[DEFAULT]\nhost = agent-{uuidlib.uuid4().hex[:8]}\nstate_path = {state_path}\n"
        "ram_allocation_ratio = 1.0\n[libvirt]\nvirt_type = qemu\n"
        f"file_backed_memory = {file_backed_memory_mb}\n"
    )
    conf = filemem_conf.load(config_files=[str(config)])
    host = ComputeHost.from_conf(conf, driver=driver, client=placement)
    host.tracker.sync()
    with database.session() as session:
        image_id = db_api.create_image(session, {"id": str(uuidlib.uuid4()), **image}).id
    loop = ReconcileLoop(host, api, wait=0)
    return Stack(database, http, driver, host, loop, image_id, api_placement)


def close_stack(stack: Stack[Any]) -> None:
    stack.http.close()
    stack.database.dispose()
