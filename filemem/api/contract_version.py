"""The API's side of the agent contract's version: a request in another version is refused."""

from __future__ import annotations

from fastapi import Request

from filemem.api.errors import NotAcceptable
from filemem.common.agent_contract import (
    CONTRACT_HEADER,
    CONTRACT_VERSION,
    header_version,
    mismatch,
)


def check_contract(request: Request) -> None:
    """Dependency of the agent routes: 406 naming the header when the agent speaks another
    version of the contract (none named: an agent from before versioning, version 1). The
    answer carries the API's version in the same header."""
    refusal = mismatch(header_version(request.headers.get(CONTRACT_HEADER)), "agent")
    if refusal is not None:
        raise NotAcceptable(refusal, {CONTRACT_HEADER: str(CONTRACT_VERSION)})
