"""Server actions (POST /servers/{id}/action): os-start, os-stop, reboot SOFT/HARD."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request, Response

from filemem.api.context import get_context
from filemem.api.errors import Conflict
from filemem.api.handlers.servers import ServerIdPath, find
from filemem.api.schemas.servers import ServerAction
from filemem.common import states
from filemem.db import api as db_api


@dataclass(frozen=True)
class Transition:
    """An action is allowed from these states and sets task_state; the agent clears it."""

    name: str
    vm_states: tuple[str, ...]
    task_states: tuple[str | None, ...]
    task_state: str


# nova's @check_instance_state rules, for the states filemem has.
TRANSITIONS = {
    "os-stop": Transition("stop", (states.ACTIVE, states.ERROR), (None,), states.POWERING_OFF),
    "os-start": Transition("start", (states.STOPPED,), (None,), states.POWERING_ON),
    "reboot": Transition("reboot", (states.ACTIVE,), (None,), states.REBOOTING),
    "reboot_hard": Transition(
        "reboot",
        (states.ACTIVE, states.STOPPED, states.ERROR),
        (None, states.REBOOTING, states.REBOOTING_HARD),
        states.REBOOTING_HARD,
    ),
}


def _refusal(
    name: str, uuid: str, vm_state: str, task_state: str | None, transition: Transition
) -> str:
    if vm_state not in transition.vm_states:
        return f"Cannot '{name}' instance {uuid} while it is in vm_state {vm_state}"
    return f"Cannot '{name}' instance {uuid} while it is in task_state {task_state}"


def server_action(request: Request, server_id: ServerIdPath, body: ServerAction) -> Response:
    """202 when the action was handed to the host's agent; 409 when the state forbids it."""
    transition = TRANSITIONS[body.action]
    with get_context(request).database.session() as session:
        instance = find(session, server_id)
        if instance.deleted_requested:
            raise Conflict(
                f"Cannot '{transition.name}' instance {instance.uuid} while it is being deleted"
            )
        if instance.host is None:
            raise Conflict(
                f"Cannot '{transition.name}' instance {instance.uuid}: it was "
                "never scheduled to a host"
            )
        updated = db_api.update_instance(
            session,
            instance.uuid,
            {"task_state": transition.task_state},
            expect_vm_states=transition.vm_states,
            expect_task_states=transition.task_states,
            expect_not_deleting=True,
            expect_host=True,
        )
        if updated is None:
            current = db_api.get_instance(session, instance.uuid, fresh=True)
            vm_state = current.vm_state if current else states.DELETED
            task_state = current.task_state if current else None
            raise Conflict(
                _refusal(transition.name, instance.uuid, vm_state, task_state, transition)
            )
    return Response(status_code=202)
