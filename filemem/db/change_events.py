"""Change notices: the hosts whose change cursor moved in a transaction, told once it commits."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session, sessionmaker

LOG = logging.getLogger(__name__)

# PostgreSQL NOTIFY channel: the payload is one host name. Another API process LISTENs on it.
CHANNEL = "filemem_changes"
_HOSTS = "filemem_changed_hosts"

ChangeHook = Callable[[frozenset[str]], object]


def record(session: Session, host: str) -> None:
    """Remember that `host`'s cursor moved in this transaction; on PostgreSQL also NOTIFY in it.

    PostgreSQL delivers the notice only if the transaction commits, and folds identical
    notices of one transaction into one, so it is sent every time (a rolled-back savepoint
    takes its notice with it)."""
    session.info.setdefault(_HOSTS, set()).add(host)
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_notify(CHANNEL, host)))


def install(factory: sessionmaker[Session], hooks: list[ChangeHook]) -> None:
    """Call every hook in `hooks` with the changed hosts after each commit of `factory`'s
    sessions (in the committing thread); forget them on rollback. `hooks` may change later."""

    def after_commit(session: Session) -> None:
        hosts: set[str] | None = session.info.pop(_HOSTS, None)
        if not hosts:
            return
        changed = frozenset(hosts)
        for hook in list(hooks):
            try:
                hook(changed)
            except Exception:
                # A notice is only a hint: the change is committed and waiters re-check.
                LOG.exception("change hook %r failed for hosts %s", hook, sorted(changed))

    def after_rollback(session: Session) -> None:
        session.info.pop(_HOSTS, None)

    def after_soft_rollback(session: Session, previous: Any) -> None:
        # A rolled-back savepoint keeps the outer transaction's hosts (a spare wake-up at
        # worst); only the end of the outermost transaction forgets them.
        if not session.in_transaction():
            session.info.pop(_HOSTS, None)

    event.listen(factory, "after_commit", after_commit)
    event.listen(factory, "after_rollback", after_rollback)
    event.listen(factory, "after_soft_rollback", after_soft_rollback)
