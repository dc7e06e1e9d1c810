"""POST /servers/{id}/action: nova's server actions, each checked against the instance's state
(nova's @check_instance_state) and recorded as an instance action."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Body, Request, Response
from starlette.concurrency import run_in_threadpool

from filemem.api import policy
from filemem.api.context import get_context
from filemem.api.errors import BadRequest, Conflict
from filemem.api.handlers import server_console, server_moves, server_snapshot
from filemem.api.handlers.instance_state import caller_is_admin, check_lock, record, transition
from filemem.api.handlers.servers import ServerIdPath, find_visible
from filemem.api.identity import get_caller
from filemem.api.microversion import APIVersion, api_version
from filemem.api.policies import servers as policies
from filemem.api.schemas import server_actions as schemas
from filemem.common import states
from filemem.conductor.instance_state import Transition, refusal
from filemem.db import api as db_api
from filemem.db import instance_actions as actions_db
from filemem.db.models import Instance

A, S, P, E = states.ACTIVE, states.STOPPED, states.PAUSED, states.ERROR
# nova's @check_instance_state rules, for the states filemem has.
TRANSITIONS = {
    "os-stop": Transition("stop", (A, E), (None,), states.POWERING_OFF, actions_db.STOP),
    "os-start": Transition("start", (S,), (None,), states.POWERING_ON, actions_db.START),
    "reboot": Transition("reboot", (A,), (None,), states.REBOOTING, actions_db.REBOOT),
    "reboot_hard": Transition(
        "reboot",
        (A, S, E),
        (None, states.REBOOTING, states.REBOOTING_HARD),
        states.REBOOTING_HARD,
        actions_db.REBOOT,
    ),
    "pause": Transition("pause", (A,), (None,), states.PAUSING, actions_db.PAUSE),
    "unpause": Transition("unpause", (P,), (None,), states.UNPAUSING, actions_db.UNPAUSE),
    "suspend": Transition("suspend", (A,), (None,), states.SUSPENDING, actions_db.SUSPEND),
    "resume": Transition(
        "resume", (states.SUSPENDED,), (None,), states.RESUMING, actions_db.RESUME
    ),
}

# nova's actions filemem does not serve, and why (a 400 that says so, never "no such action").
UNSUPPORTED = {
    **dict.fromkeys(
        ("shelve", "shelveOffload", "unshelve"),
        "filemem does not shelve servers yet",
    ),
    **dict.fromkeys(("rescue", "unrescue"), "filemem has no rescue images"),
    **dict.fromkeys(
        ("migrate", "evacuate"), "filemem does not move guests between hosts by cold migration"
    ),
    **dict.fromkeys(
        (
            "addSecurityGroup",
            "removeSecurityGroup",
            "addFloatingIp",
            "removeFloatingIp",
            "addFixedIp",
            "removeFixedIp",
            "injectNetworkInfo",
            "resetNetwork",
        ),
        "filemem guests have no networking",
    ),
    "changePassword": "filemem does not inject passwords into guests",
    **dict.fromkeys(
        ("os-getVNCConsole", "os-getSPICEConsole", "os-getRDPConsole", "os-getSerialConsole"),
        "filemem offers the serial console log only (os-getConsoleOutput)",
    ),
    **dict.fromkeys(("restore", "forceDelete"), "filemem deletes servers at once (no soft delete)"),
}


Handler = Callable[[Request, Instance, Any], Response]
AsyncHandler = Callable[[Request, Instance, Any], Awaitable[Response]]


def _state_action(name: str) -> Handler:
    def handle(request: Request, instance: Instance, value: Any) -> Response:
        key = name
        if name == "reboot":
            reboot = schemas.parse(schemas.Reboot, name, value)
            key = "reboot_hard" if reboot.type == "HARD" else "reboot"
        else:
            schemas.parse(schemas.NoBody, name, value)
        check_lock(request, instance)
        transition(request, instance, TRANSITIONS[key])
        return Response(status_code=202)

    return handle


def _lock(request: Request, instance: Instance, value: Any) -> Response:
    schemas.parse(schemas.NoBody, "lock", value)
    owner = get_caller(request).project_id == instance.project_id
    _set_lock(request, instance, "owner" if owner else "admin", "lock")
    return Response(status_code=202)


def _unlock(request: Request, instance: Instance, value: Any) -> Response:
    schemas.parse(schemas.NoBody, "unlock", value)
    # nova's is_expected_locked_by: a lock taken by an admin of another project needs the
    # override to be lifted.
    owner = get_caller(request).project_id == instance.project_id
    if instance.locked_by == "admin" and owner and not caller_is_admin(request):
        policy.authorize(request, policies.UNLOCK_OVERRIDE)
    _set_lock(request, instance, None, "unlock")
    return Response(status_code=202)


def _set_lock(request: Request, instance: Instance, by: str | None, action: str) -> None:
    with get_context(request).database.session() as session:
        # Locking changes nothing on the host: no change row for the agent.
        db_api.update_instance(
            session, instance.uuid, {"locked_by": by, "locked_reason": None}, notify=False
        )
        record(session, request, instance, action)


def _crash_dump(request: Request, instance: Instance, value: Any) -> Response:
    schemas.parse(schemas.NoBody, "trigger_crash_dump", value)
    check_lock(request, instance)
    allowed = (A, P, states.RESIZED, E)
    if instance.vm_state not in allowed or instance.task_state is not None:
        raise Conflict(refusal("trigger_crash_dump", instance.uuid, instance, allowed))
    if instance.power_state != 1:
        raise Conflict(f"Instance {instance.uuid} is not running.")
    with get_context(request).database.session() as session:
        updated = db_api.update_instance(
            session,
            instance.uuid,
            {"crash_dump_requested": True},
            expect_vm_states=allowed,
            expect_task_states=[None],
            expect_not_deleting=True,
            expect_host=True,
        )
        if updated is None:
            raise Conflict(f"Instance {instance.uuid} changed state; try again")
        record(session, request, updated, actions_db.TRIGGER_CRASH_DUMP)
    return Response(status_code=202)


def _reset_state(request: Request, instance: Instance, value: Any) -> Response:
    """os-resetState (admin): the way out of a stuck task; the agent converges from there."""
    body = schemas.parse(schemas.ResetState, "os-resetState", value)
    with get_context(request).database.session() as session:
        db_api.update_instance(
            session,
            instance.uuid,
            {"vm_state": body.state, "task_state": None},
            expect_not_deleting=True,
        )
        record(session, request, instance, "resetState")
    return Response(status_code=202)


# name -> (handler, the first microversion that has it)
ACTIONS: dict[str, tuple[Handler, APIVersion]] = {
    **{
        name: (_state_action(name), APIVersion(2, 1))
        for name in ("os-start", "os-stop", "reboot", "pause", "unpause", "suspend", "resume")
    },
    "lock": (_lock, APIVersion(2, 1)),
    "unlock": (_unlock, APIVersion(2, 1)),
    "os-resetState": (_reset_state, APIVersion(2, 1)),
    "trigger_crash_dump": (_crash_dump, APIVersion(2, 17)),
    "rebuild": (server_moves.rebuild, APIVersion(2, 1)),
    "resize": (server_moves.resize, APIVersion(2, 1)),
    "confirmResize": (server_moves.confirm_resize, APIVersion(2, 1)),
    "revertResize": (server_moves.revert_resize, APIVersion(2, 1)),
    "os-migrateLive": (server_moves.live_migrate, APIVersion(2, 1)),
    "createImage": (server_snapshot.create_image, APIVersion(2, 1)),
    "createBackup": (server_snapshot.create_backup, APIVersion(2, 1)),
}
# Actions that wait for an agent: they run on the event loop and wait without a thread.
ASYNC_ACTIONS: dict[str, tuple[AsyncHandler, APIVersion]] = {
    "os-getConsoleOutput": (server_console.console_output, APIVersion(2, 1)),
}


def _one_action(body: Any) -> tuple[str, Any]:
    if not isinstance(body, dict) or len(body) != 1:
        raise BadRequest("Exactly one action is expected in the request body")
    ((name, value),) = body.items()
    return str(name), value


def _refuse_unsupported(request: Request, server_id: str, name: str) -> None:
    """As nova, the server is found first (404); a restore finds it never soft-deleted (409,
    nova's answer for a server in another state); anything else is a 400 saying why."""
    with get_context(request).database.reader() as session:
        instance = find_visible(request, session, server_id)
    if name == "restore":
        raise Conflict(
            f"Cannot 'restore' instance {instance.uuid} while it is in vm_state "
            f"{instance.vm_state}: {UNSUPPORTED[name]}"
        )
    raise BadRequest(f"filemem does not support the server action '{name}': {UNSUPPORTED[name]}")


def _checked_version(request: Request, name: str) -> None:
    entry = ACTIONS.get(name) or ASYNC_ACTIONS.get(name)
    if entry is None or api_version(request) < entry[1]:
        raise BadRequest(f"There is no such action: {name}")


def _target(request: Request, server_id: str, name: str) -> Instance:
    """The instance the caller may run `name` on (404, 403, 409 otherwise)."""
    with get_context(request).database.reader() as session:
        instance = find_visible(request, session, server_id)
    target = {"project_id": instance.project_id, "user_id": instance.user_id}
    policy.authorize(request, policies.ACTION_RULES[name], target)
    if instance.deleted_requested:
        raise Conflict(f"Cannot '{name}' instance {instance.uuid} while it is being deleted")
    return instance


async def server_action(
    request: Request, server_id: ServerIdPath, body: Annotated[Any, Body()]
) -> Response:
    """202 once the action is handed to the host's agent (200/204 for those nova answers so);
    409 when the instance's state forbids it, 400 for an action filemem does not serve.

    The database work runs in the thread pool; an action that waits for an agent
    (ASYNC_ACTIONS) waits on the event loop, so waiting callers hold no thread."""
    name, value = _one_action(body)
    if name in UNSUPPORTED:
        await run_in_threadpool(_refuse_unsupported, request, server_id, name)
    _checked_version(request, name)
    instance = await run_in_threadpool(_target, request, server_id, name)
    if name in ASYNC_ACTIONS:
        return await ASYNC_ACTIONS[name][0](request, instance, value)
    return await run_in_threadpool(ACTIONS[name][0], request, instance, value)
