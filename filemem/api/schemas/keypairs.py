"""POST /os-keypairs: nova's key pair body; the handler gates type (2.2) and user_id (2.10)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from filemem.api.schemas.common import StrictModel

# nova's parameter_types.keypair_name_special_chars (and `name`: no surrounding spaces).
KEYPAIR_NAME_PATTERN = r"^[_\- a-zA-Z0-9]+$"


def _no_surrounding_spaces(value: str) -> str:
    if value != value.strip():
        raise ValueError("must not begin or end with whitespace")
    return value


KeypairName = Annotated[
    str,
    Field(min_length=1, max_length=255, pattern=KEYPAIR_NAME_PATTERN),
    AfterValidator(_no_surrounding_spaces),
]


class KeypairCreate(StrictModel):
    name: KeypairName
    # Absent: generate a key pair; present: import it (an unparsable key is a 400).
    public_key: Annotated[str, Field(max_length=65535)] | None = None
    type: Literal["ssh", "x509"] | None = None
    user_id: Annotated[str, Field(min_length=1, max_length=255)] | None = None


class KeypairCreateRequest(StrictModel):
    keypair: KeypairCreate
