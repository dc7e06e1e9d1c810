"""Shared constrained types: names, identifiers, sizes, UUIDs, and the strict base model."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

# Defined in the bottom layer so that the agent contract (filemem.common.agent_contract),
# which the agent imports too, uses the same constrained types as the API's own bodies.
from filemem.common.constrained import MAX_NAME as MAX_NAME
from filemem.common.constrained import Name as Name
from filemem.common.constrained import Storable as Storable
from filemem.common.constrained import StrictModel as StrictModel
from filemem.common.constrained import Uuid as Uuid
from filemem.common.constrained import is_uuid as is_uuid
from filemem.common.constrained import printable as _printable

Text255 = Annotated[str, Field(max_length=MAX_NAME), AfterValidator(_printable)]
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


def is_flavor_id(value: str) -> bool:
    return 0 < len(value) <= MAX_NAME and re.match(FLAVOR_ID_PATTERN, value) is not None
