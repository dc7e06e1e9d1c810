"""The conductor decides a server action's state change without HTTP: the compare-and-swap,
nova's refusal words, and the action it records for who asked."""

from __future__ import annotations

import pytest

from filemem.common import states
from filemem.conductor import instance_state as state
from filemem.db import api as db_api
from filemem.db import instance_actions as actions_db
from filemem.db.models import Instance
from tests.unit import servers_app
from tests.unit.servers_app import ServersApp

app = servers_app.app

STOP = state.Transition("stop", (states.ACTIVE,), (None,), states.POWERING_OFF, actions_db.STOP)
WHO = state.Actor("req-stop-1", "user-1")


def _instance(app: ServersApp, uuid: str) -> Instance:
    with app.ctx.database.reader() as session:
        instance = db_api.get_instance(session, uuid)
        assert instance is not None
        session.expunge(instance)
        return instance


def test_a_transition_swaps_the_state_and_records_who_asked(app: ServersApp) -> None:
    uuid = app.boot()
    app.set_state(uuid, states.ACTIVE)
    state.transition(app.ctx.database, _instance(app, uuid), STOP, WHO)
    after = _instance(app, uuid)
    assert (after.vm_state, after.task_state) == (states.ACTIVE, states.POWERING_OFF)
    with app.ctx.database.reader() as session:
        action = actions_db.get_action(session, uuid, WHO.request_id)
        assert action is not None
        assert (action.action, action.user_id) == (actions_db.STOP, WHO.user_id)
    # The same step again finds a task running: refused with nova's words, nothing recorded.
    with pytest.raises(state.StateRefused, match="while it is in task_state powering-off"):
        state.transition(app.ctx.database, after, STOP, state.Actor("req-stop-2", "user-1"))
    with app.ctx.database.reader() as session:
        assert actions_db.get_action(session, uuid, "req-stop-2") is None


def test_an_unscheduled_instance_is_refused(app: ServersApp) -> None:
    instance = _instance(app, app.boot())
    instance.host = None
    with pytest.raises(state.StateRefused, match="it was never scheduled to a host"):
        state.transition(app.ctx.database, instance, STOP, WHO)
