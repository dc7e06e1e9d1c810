"""os-getConsoleOutput: the tail of the serial console log, fetched from the host's agent."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from filemem.api.context import ApiContext, get_context
from filemem.api.errors import Conflict, ServiceUnavailable
from filemem.api.schemas import server_actions as schemas
from filemem.common import states
from filemem.db import api as db_api
from filemem.db.models import Instance, utcnow

# The agent wakes within its long-poll interval; this is how long the API waits for it.
ANSWER_TIMEOUT = 10.0
# An answer that commits in this process wakes the wait at once; one stored through another
# API process (same database) is seen at the next re-read, at most this much later.
RECHECK_INTERVAL = 0.5
# nova strips these from the log before answering (servers' console output is shown raw).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f]")


def tail(log: str, length: int | None) -> str:
    """The last `length` lines, as nova's _tail_log; None keeps the whole log."""
    if length is None:
        return log
    if length <= 0:
        return ""
    return "\n".join(log.split("\n")[-length:])


def _ask(ctx: ApiContext, server_id: str, asked: dt.datetime) -> None:
    with ctx.database.session() as session:
        # A change row wakes the agent; it answers with PUT /filemem/v1/instances/{id}/console.
        db_api.update_instance(session, server_id, {"console_requested_at": asked})


def _answer(ctx: ApiContext, server_id: str, asked: dt.datetime) -> str | None:
    """The console log the agent stored since `asked`, None while it has not answered."""
    with ctx.database.reader() as session:
        current = db_api.get_instance(session, server_id)
        if current is None:
            raise Conflict(f"Instance {server_id} was deleted meanwhile")
        answered = current.console_output_at
        if answered is not None and answered >= asked:
            return current.console_output or ""
    return None


async def _wait_for_answer(ctx: ApiContext, server_id: str) -> str | None:
    """Ask the agent and wait for its answer without holding a thread: the agent's answer
    needs one of the same threads (a wait per thread starved the API at 40 waits)."""
    loop = asyncio.get_running_loop()
    with ctx.console_answers.subscribe(server_id) as waiter:
        asked = utcnow()
        await run_in_threadpool(_ask, ctx, server_id, asked)
        deadline = loop.time() + ANSWER_TIMEOUT
        while True:
            # Armed before the read: an answer committing during it still wakes the wait.
            waiter.arm()
            output = await run_in_threadpool(_answer, ctx, server_id, asked)
            remaining = deadline - loop.time()
            if output is not None or remaining <= 0:
                return output
            await waiter.wait(min(RECHECK_INTERVAL, remaining))


async def console_output(request: Request, instance: Instance, value: Any) -> JSONResponse:
    """200 {"output": ...}; 409 while the guest has no host or is building; 429 at once when
    too many console requests (of the server, or in all) already wait; 503 when the host's
    agent does not answer in ANSWER_TIMEOUT seconds."""
    body = schemas.parse(schemas.ConsoleOutput, "os-getConsoleOutput", value)
    if instance.host is None or instance.vm_state == states.BUILDING:
        raise Conflict(f"Instance {instance.uuid} is not ready")
    ctx = get_context(request)
    with ctx.console_limits.slot(instance.uuid):
        output = await _wait_for_answer(ctx, instance.uuid)
    if output is None:
        raise ServiceUnavailable(
            f"the agent of host {instance.host} did not send the console log of instance "
            f"{instance.uuid} within {ANSWER_TIMEOUT:.0f} s; is filemem-compute running there?"
        )
    return JSONResponse({"output": _CONTROL.sub("", tail(output, body.lines()))})
