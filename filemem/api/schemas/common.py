"""Shared constrained types: names, identifiers, sizes, UUIDs, and the strict base model."""

from __future__ import annotations

import re
import unicodedata
import uuid as uuidlib
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_NAME = 255


class StrictModel(BaseModel):
    """Unknown fields are refused and JSON types are not coerced ("1" is not an int)."""

    model_config = ConfigDict(extra="forbid", strict=True)


def _printable(value: str) -> str:
    # Control characters (NUL above all: PostgreSQL refuses it in text) and lone surrogates
    # cannot be stored; reject them here as bad input rather than fail in the database.
    for char in value:
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError("must not contain control characters")
    return value


def _trimmed(value: str) -> str:
    if value != value.strip():
        raise ValueError("must not begin or end with whitespace")
    return value


def _uuid(value: str) -> str:
    try:
        parsed = uuidlib.UUID(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid UUID") from None
    return str(parsed)


def _storable(value: str) -> str:
    for char in value:
        if char == "\x00" or unicodedata.category(char) == "Cs":
            raise ValueError("must not contain NUL or unpaired surrogates")
    return value


# Free text (descriptions, fault messages): newlines are fine, NUL and surrogates are not.
Storable = Annotated[str, AfterValidator(_storable)]
Text255 = Annotated[str, Field(max_length=MAX_NAME), AfterValidator(_printable)]
Name = Annotated[
    str,
    Field(min_length=1, max_length=MAX_NAME),
    AfterValidator(_printable),
    AfterValidator(_trimmed),
]
Uuid = Annotated[str, Field(min_length=32, max_length=45), AfterValidator(_uuid)]
# nova's flavor id pattern: letters, digits, '.', '_', '-' and inner spaces.
FLAVOR_ID_PATTERN = r"^[a-zA-Z0-9._-]([a-zA-Z0-9. _-]*[a-zA-Z0-9._-])?$"
FlavorId = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=FLAVOR_ID_PATTERN)]
# A reference is an id or an href ending in one (nova accepts both for flavorRef/imageRef).
Ref = Annotated[str, Field(min_length=1, max_length=1024), AfterValidator(_printable)]
MemoryMb = Annotated[int, Field(ge=16, le=4194304)]
Vcpus = Annotated[int, Field(ge=1, le=1024)]
DiskGb = Annotated[int, Field(ge=0, le=65536)]
HostName = Annotated[
    str, Field(min_length=1, max_length=MAX_NAME, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]


def ref_id(ref: str) -> str:
    """The id at the end of an href, or the ref itself."""
    return ref.rstrip("/").rsplit("/", 1)[-1]


def is_uuid(value: str) -> bool:
    try:
        _uuid(value)
    except ValueError:
        return False
    return True


def is_flavor_id(value: str) -> bool:
    return 0 < len(value) <= MAX_NAME and re.match(FLAVOR_ID_PATTERN, value) is not None
