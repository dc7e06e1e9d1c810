"""Host credentials: issue (secret shown once, its sha256 stored), list, revoke, look up."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from filemem.db.models import HostCredential, utcnow

# 32 random bytes: a sha256 of the secret is enough (no salt, no slow hash), as for API keys.
SECRET_BYTES = 32


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).hexdigest()


def create(session: Session, host: str) -> tuple[HostCredential, str]:
    """A new credential for `host` and its secret (which is stored nowhere)."""
    secret = secrets.token_urlsafe(SECRET_BYTES)
    credential = HostCredential(host=host, secret_hash=hash_secret(secret), created_at=utcnow())
    session.add(credential)
    session.flush()
    return credential, secret


def list_for_host(session: Session, host: str) -> list[HostCredential]:
    query = select(HostCredential).where(HostCredential.host == host).order_by(HostCredential.id)
    return list(session.scalars(query))


def get(session: Session, host: str, credential_id: int) -> HostCredential | None:
    credential = session.get(HostCredential, credential_id)
    return credential if credential is not None and credential.host == host else None


def revoke(session: Session, credential: HostCredential) -> None:
    """Idempotent: a revoked credential keeps its first revocation time."""
    if credential.revoked_at is None:
        credential.revoked_at = utcnow()


def find_valid(session: Session, secret: str) -> HostCredential | None:
    """The unrevoked credential whose secret this is (one indexed lookup), else None."""
    digest = hash_secret(secret)
    query = select(HostCredential).where(
        HostCredential.secret_hash == digest, HostCredential.revoked_at.is_(None)
    )
    credential = session.scalars(query).first()
    # The index found it by equality; compare again in constant time all the same.
    if credential is None or not hmac.compare_digest(credential.secret_hash, digest):
        return None
    return credential


def touch(session: Session, credential_id: int, now: dt.datetime) -> None:
    credential = session.get(HostCredential, credential_id)
    if credential is not None:
        credential.last_used_at = now
