"""Key pairs of users (os-keypairs): stored and listed, never injected into guests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from filemem.db.api import DuplicateEntry
from filemem.db.models import KeyPair, utcnow


class MarkerNotFound(LookupError):
    """A page's marker names no key pair of the user."""


def create(session: Session, values: Mapping[str, Any]) -> KeyPair:
    """Insert a key pair; DuplicateEntry when the user already has one of that name."""
    if get(session, values["user_id"], values["name"]) is not None:
        raise DuplicateEntry(f"Key pair '{values['name']}' already exists.")
    row = KeyPair(created_at=utcnow(), **values)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        # Another request created the same name between our read and write.
        raise DuplicateEntry(f"Key pair '{values['name']}' already exists.") from exc
    return row


def get(session: Session, user_id: str, name: str) -> KeyPair | None:
    query = select(KeyPair).where(KeyPair.user_id == user_id, KeyPair.name == name)
    return session.scalars(query).first()


def list_for_user(
    session: Session, user_id: str, *, limit: int | None = None, marker: str | None = None
) -> list[KeyPair]:
    """The user's key pairs by name (nova's order), after `marker` and at most `limit`."""
    query = select(KeyPair).where(KeyPair.user_id == user_id)
    if marker is not None:
        if get(session, user_id, marker) is None:
            raise MarkerNotFound(f"Marker {marker} could not be found.")
        query = query.where(KeyPair.name > marker)
    query = query.order_by(KeyPair.name)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def delete(session: Session, row: KeyPair) -> None:
    session.delete(row)
    session.flush()
