"""os-getConsoleOutput: the tail of the serial console log, fetched from the host's agent."""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from filemem.api.context import get_context
from filemem.api.errors import Conflict, ServiceUnavailable
from filemem.api.schemas import server_actions as schemas
from filemem.common import states
from filemem.db import api as db_api
from filemem.db.models import Instance, utcnow

# The agent wakes within its long-poll interval; this is how long the API waits for it.
ANSWER_TIMEOUT = 10.0
POLL_INTERVAL = 0.1
# nova strips these from the log before answering (servers' console output is shown raw).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f]")


def tail(log: str, length: int | None) -> str:
    """The last `length` lines, as nova's _tail_log; None keeps the whole log."""
    if length is None:
        return log
    if length <= 0:
        return ""
    return "\n".join(log.split("\n")[-length:])


def console_output(request: Request, instance: Instance, value: Any) -> JSONResponse:
    """200 {"output": ...}; 409 while the guest has no host or is building; 503 when the
    host's agent does not answer in ANSWER_TIMEOUT seconds."""
    body = schemas.parse(schemas.ConsoleOutput, "os-getConsoleOutput", value)
    if instance.host is None or instance.vm_state == states.BUILDING:
        raise Conflict(f"Instance {instance.uuid} is not ready")
    database = get_context(request).database
    asked = utcnow()
    with database.session() as session:
        # A change row wakes the agent; it answers with PUT /filemem/v1/instances/{id}/console.
        db_api.update_instance(session, instance.uuid, {"console_requested_at": asked})
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while time.monotonic() < deadline:
        with database.reader() as session:
            current = db_api.get_instance(session, instance.uuid)
            if current is None:
                raise Conflict(f"Instance {instance.uuid} was deleted meanwhile")
            answered = current.console_output_at
            if answered is not None and answered >= asked:
                output = _CONTROL.sub("", tail(current.console_output or "", body.lines()))
                return JSONResponse({"output": output})
        time.sleep(POLL_INTERVAL)
    raise ServiceUnavailable(
        f"the agent of host {instance.host} did not send the console log of instance "
        f"{instance.uuid} within {ANSWER_TIMEOUT:.0f} s; is filemem-compute running there?"
    )
