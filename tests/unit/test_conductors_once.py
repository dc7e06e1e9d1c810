"""The app builds each conductor once, with the scheduler: every resize and live migration
route asks the app's scheduler, so its filters can never be silently skipped."""

from __future__ import annotations

from collections.abc import Sequence

from filemem.conductor.servers import SchedulerProtocol
from filemem.scheduler import NoValidHost, RequestSpec, Selection
from tests.unit import servers_app
from tests.unit.live_migration_app import active_server, allocations, migrate, two_hosts
from tests.unit.servers_app import ServersApp

app = servers_app.app

REFUSAL = "is refused by the test's filter"


class RefusingScheduler:
    """The app's scheduler behind a filter that refuses every host, counting what it saw."""

    def __init__(self, real: SchedulerProtocol) -> None:
        self.real = real
        self.asked: list[str] = []

    def select_and_claim(self, spec: RequestSpec) -> Selection:
        self.asked.append("select_and_claim")
        raise NoValidHost(REFUSAL)

    def select_and_claim_many(self, specs: Sequence[RequestSpec]) -> list[Selection]:
        self.asked.append("select_and_claim_many")
        raise NoValidHost(REFUSAL)

    def invalidate_hosts(self) -> None:
        self.real.invalidate_hosts()

    def refusal_in_place(self, spec: RequestSpec, provider_uuid: str) -> str | None:
        self.asked.append("refusal_in_place")
        return REFUSAL


def test_every_conductor_holds_the_apps_scheduler(app: ServersApp) -> None:
    ctx = app.ctx
    assert ctx.conductor.scheduler is ctx.scheduler
    assert ctx.resize_conductor.scheduler is ctx.scheduler
    assert ctx.live_migration_conductor.scheduler is ctx.scheduler
    refusing = RefusingScheduler(ctx.scheduler)
    ctx.use_scheduler(refusing)
    for conductor in (ctx.conductor, ctx.resize_conductor, ctx.live_migration_conductor):
        assert conductor.scheduler is refusing


def test_resize_and_live_migration_routes_apply_the_filters(app: ServersApp) -> None:
    dest, _dest_rp = two_hosts(app)
    uuid = active_server(app)
    held = allocations(app, uuid)
    bigger = app.call(
        "POST", "/flavors", json={"flavor": {"name": "big", "ram": 512, "vcpus": 1, "disk": 0}}
    )
    assert bigger.status_code == 200, bigger.text
    app.ctx.allow_resize_to_same_host = True
    refusing = RefusingScheduler(app.ctx.scheduler)
    app.ctx.use_scheduler(refusing)

    body = {"resize": {"flavorRef": bigger.json()["flavor"]["id"]}}
    resized = app.call("POST", f"/servers/{uuid}/action", json=body)
    assert resized.status_code == 400, resized.text
    assert f"Host {app.host} {REFUSAL}" in resized.text
    assert refusing.asked == ["refusal_in_place"]

    # Scheduled, then to a named (not forced) host: both go through the scheduler's filters.
    for host in (None, dest):
        refusing.asked.clear()
        moved = migrate(app, uuid, "2.30", host=host)
        assert moved.status_code == 400, moved.text
        assert REFUSAL in moved.text
        assert refusing.asked == ["select_and_claim"]

    assert allocations(app, uuid) == held
    assert app.show(uuid)["status"] == "ACTIVE"
