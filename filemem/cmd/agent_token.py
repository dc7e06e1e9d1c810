"""The token filemem-compute sends to filemem-api: its host credential file, or the admin token."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from filemem.exceptions import ConfigError

CREDENTIAL_OPT = "[DEFAULT] api_credential_file"
TOKEN_OPT = "[DEFAULT] api_token"  # noqa: S105 - an option name


def agent_token(api_token: str, credential_file: str) -> str:
    """Exactly one of the two options; ConfigError naming them otherwise."""
    if api_token and credential_file:
        raise ConfigError(
            CREDENTIAL_OPT,
            f"set either it or {TOKEN_OPT}, not both (the credential file is the one for a "
            "compute host; api_token is the admin token)",
        )
    if credential_file:
        return read_credential_file(Path(credential_file))
    if api_token:
        return api_token
    raise ConfigError(
        CREDENTIAL_OPT,
        f"set it (or {TOKEN_OPT}) to authenticate to the filemem-api at [DEFAULT] "
        "api_endpoint: `filemem host credential create HOST --output FILE` on an admin's "
        "machine makes the file",
    )


def read_credential_file(path: Path) -> str:
    """The secret in `path`, refused unless only its owner can read it (0600 or 0400)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise ConfigError(CREDENTIAL_OPT, f"cannot read {path}: {exc.strerror}") from exc
    with os.fdopen(fd, encoding="utf-8") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise ConfigError(CREDENTIAL_OPT, f"{path} is not a regular file")
        if mode & 0o077:
            raise ConfigError(
                CREDENTIAL_OPT,
                f"{path} has mode {stat.S_IMODE(mode):04o}: a credential must be readable by "
                "its owner only (chmod 600)",
            )
        secret = handle.read().strip()
    if not secret:
        raise ConfigError(CREDENTIAL_OPT, f"{path} is empty")
    return secret
