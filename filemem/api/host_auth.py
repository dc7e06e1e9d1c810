"""HostCredentialAuthenticator: a host credential's secret → the Caller of that host's agent."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable

from cachetools import TTLCache
from sqlalchemy.exc import SQLAlchemyError

from filemem.api.identity import DEFAULT_PROJECT_ID, Caller
from filemem.db import host_credentials
from filemem.db.models import utcnow
from filemem.db.session import Database

LOG = logging.getLogger(__name__)

AGENT_ROLE = "filemem-agent"
# A revoked credential stops working within this many seconds in every API process.
CACHE_SECONDS = 5.0
CACHE_SIZE = 4096
# last_used_at is rewritten at most this often per credential: a hint, not an audit log.
LAST_USED_RESOLUTION = dt.timedelta(minutes=1)


def host_caller(host: str, project_id: str = DEFAULT_PROJECT_ID) -> Caller:
    """The identity a host credential proves: that host's agent, not an admin."""
    return Caller(
        user_id=f"host:{host}",
        project_id=project_id,
        roles=frozenset({AGENT_ROLE}),
        is_admin=False,
        host=host,
        kind="host_credential",
    )


class HostCredentialAuthenticator:
    """An Authenticator for TokenAuthMiddleware backed by the host_credentials table.

    Known secrets are cached (keyed by their sha256) for CACHE_SECONDS, so an agent's steady
    stream of requests costs one indexed SELECT per credential every few seconds; unknown
    tokens are not cached, so a new credential works at once and a wrong token costs one
    SELECT. Revocation takes effect within CACHE_SECONDS.
    """

    def __init__(
        self,
        database: Database,
        project_id: str = DEFAULT_PROJECT_ID,
        ttl: float = CACHE_SECONDS,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        self._database = database
        self._project_id = project_id
        self._cache: TTLCache[str, Caller] = TTLCache(CACHE_SIZE, ttl, timer=timer)
        self._lock = threading.Lock()

    def __call__(self, token: str) -> Caller | None:
        key = host_credentials.hash_secret(token)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        caller = self._lookup(token)
        if caller is not None:
            with self._lock:
                self._cache[key] = caller
        return caller

    def _lookup(self, token: str) -> Caller | None:
        with self._database.reader() as session:
            credential = host_credentials.find_valid(session, token)
            if credential is None:
                return None
            host, credential_id, last_used = credential.host, credential.id, credential.last_used_at
        now = utcnow()
        if last_used is None or now - last_used >= LAST_USED_RESOLUTION:
            try:
                with self._database.session() as session:
                    host_credentials.touch(session, credential_id, now)
            except SQLAlchemyError as exc:
                # A hint for the operator: a busy database must not turn away a valid agent.
                LOG.warning("host credential %d: last_used_at not recorded: %s", credential_id, exc)
        return host_caller(host, self._project_id)
