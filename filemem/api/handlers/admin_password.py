"""adminPass in server create and rebuild answers, as nova's [api] enable_instance_password."""

from __future__ import annotations

import secrets

from fastapi import Request

from filemem.api.context import get_context

# nova's password_length and the symbols of its generate_password (no look-alike characters).
PASSWORD_LENGTH = 12
PASSWORD_SYMBOLS = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"  # noqa: S105


def generate_password() -> str:
    return "".join(secrets.choice(PASSWORD_SYMBOLS) for _ in range(PASSWORD_LENGTH))


def admin_password(request: Request, given: str | None) -> dict[str, str]:
    """{"adminPass": the request's, else a generated one}; {} when the option is off. Like
    nova's libvirt driver without password injection, filemem does not set it in the guest."""
    if not get_context(request).enable_instance_password:
        return {}
    return {"adminPass": given or generate_password()}
