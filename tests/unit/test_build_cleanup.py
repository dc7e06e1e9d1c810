"""Builds a dead API process left half-done: stale scheduling rows to ERROR, their claims freed."""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib

from sqlalchemy import update

from filemem.common import states
from filemem.conductor.build_cleanup import sweep
from filemem.db import api as db_api
from filemem.db import instance_actions
from filemem.db.models import Instance, utcnow
from filemem.scheduler.manager import Selection
from tests.unit.api_app import Api

RESOURCES = {"MEMORY_MB": 256, "VCPU": 1}


def _row(api: Api, age_s: float, host: str | None = None, action: bool = True) -> str:
    """An instance row as POST /servers writes it, created `age_s` seconds ago."""
    uuid = str(uuidlib.uuid4())
    with api.ctx.database.session() as session:
        db_api.create_instance(
            session,
            {
                "uuid": uuid,
                "display_name": f"s-{uuid[:4]}",
                "project_id": api.ctx.project_id,
                "user_id": api.ctx.user_id,
                "flavor_id": "1",
                "flavor_name": "tiny",
                "vcpus": 1,
                "memory_mb": 256,
                "root_gb": 0,
                "image_id": str(uuidlib.uuid4()),
                "host": host,
                "vm_state": states.BUILDING,
                "task_state": states.SCHEDULING if host is None else states.SPAWNING,
                "power_state": 0,
                "deleted_requested": False,
            },
        )
        if action:
            instance_actions.record_action(
                session,
                uuid,
                instance_actions.CREATE,
                request_id="req-test",
                project_id=api.ctx.project_id,
                user_id=api.ctx.user_id,
            )
        created = utcnow() - dt.timedelta(seconds=age_s)
        session.execute(update(Instance).where(Instance.uuid == uuid).values(created_at=created))
    return uuid


def _claim(api: Api, consumer: str, provider: str) -> None:
    api.placement.claim(consumer, provider, RESOURCES, api.ctx.project_id, api.ctx.user_id)


def _allocated(api: Api, consumer: str) -> bool:
    return bool(api.placement.get_allocations(consumer)[1])


def test_a_stale_scheduling_row_goes_to_error_and_its_claim_is_released(api: Api) -> None:
    provider = api.register_host("sweep-host")
    stale, young, spawning = _row(api, 600), _row(api, 5), _row(api, 600, host="sweep-host")
    for uuid in (stale, young, spawning):
        _claim(api, uuid, provider)
    result = sweep(api.ctx.database, api.placement, timeout=300)
    assert result.failed == [stale] and result.released == []
    with api.ctx.database.reader() as session:
        failed = db_api.get_instance(session, stale)
        assert failed is not None
        assert (failed.vm_state, failed.task_state, failed.fault_code) == ("error", None, 500)
        assert failed.fault_message and "Build interrupted" in failed.fault_message
        for uuid in (young, spawning):
            kept = db_api.get_instance(session, uuid)
            assert kept is not None and kept.vm_state == states.BUILDING
    assert not _allocated(api, stale)
    assert _allocated(api, young) and _allocated(api, spawning)
    # Idempotent; and the sibling whose build it was cannot hand it over any more.
    assert sweep(api.ctx.database, api.placement, timeout=300).failed == []
    assert not api.ctx.conductor._hand_over(stale, Selection("sweep-host", provider))


def test_a_claim_of_a_server_that_has_no_row_is_released(api: Api) -> None:
    provider = api.register_host("orphan-host")
    gone = _row(api, 1)
    with api.ctx.database.session() as session:
        assert db_api.delete_instance(session, gone)
    foreign = str(uuidlib.uuid4())  # a guest the agent runs outside the API: no action
    for consumer in (gone, foreign):
        _claim(api, consumer, provider)
    result = sweep(api.ctx.database, api.placement, timeout=300)
    assert result.released == [gone]
    assert not _allocated(api, gone) and _allocated(api, foreign)
