"""Constrained types shared by the API's bodies and the agent contract: the strict base model,
names, UUIDs and storable text."""

from __future__ import annotations

import unicodedata
import uuid as uuidlib
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

MAX_NAME = 255


class StrictModel(BaseModel):
    """Unknown fields are refused and JSON types are not coerced ("1" is not an int)."""

    model_config = ConfigDict(extra="forbid", strict=True)


def printable(value: str) -> str:
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
Name = Annotated[
    str,
    Field(min_length=1, max_length=MAX_NAME),
    AfterValidator(printable),
    AfterValidator(_trimmed),
]
Uuid = Annotated[str, Field(min_length=32, max_length=45), AfterValidator(_uuid)]


def is_uuid(value: str) -> bool:
    try:
        _uuid(value)
    except ValueError:
        return False
    return True
