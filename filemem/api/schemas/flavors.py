"""POST /flavors and os-extra_specs bodies."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, RootModel

from filemem.api.schemas.common import (
    DiskGb,
    FlavorId,
    MemoryMb,
    Name,
    Storable,
    StrictModel,
    Text255,
    Vcpus,
)

SPEC_KEY_PATTERN = r"^[a-zA-Z0-9-_:. ]+$"
SpecKey = Annotated[str, Field(min_length=1, max_length=255, pattern=SPEC_KEY_PATTERN)]
ExtraSpecs = Annotated[dict[SpecKey, Text255], Field(max_length=256)]
# nova's validator for hw:mem_page_size (nova/api/validation/extra_specs/hw.py).
PAGE_SIZE_RE = re.compile(r"^(large|small|any|\d+([kKMGT]i?)?(b|bit|B)?)$")


class FlavorCreate(StrictModel):
    name: Name
    ram: MemoryMb
    vcpus: Vcpus
    disk: DiskGb
    id: FlavorId | None = None
    ephemeral: Literal[0] = Field(0, alias="OS-FLV-EXT-DATA:ephemeral")
    swap: Literal[0, ""] = 0
    rxtx_factor: Annotated[float, Field(gt=0, le=65535)] = 1.0
    is_public: bool = Field(True, alias="os-flavor-access:is_public")
    description: Annotated[Storable, Field(max_length=65535)] | None = None


class FlavorCreateRequest(StrictModel):
    flavor: FlavorCreate


def check_specs(specs: dict[str, str]) -> dict[str, str]:
    page_size = specs.get("hw:mem_page_size")
    if page_size is not None and not PAGE_SIZE_RE.match(page_size):
        raise ValueError(f"hw:mem_page_size {page_size!r} is not small, large, any or a size")
    return specs


class ExtraSpecsRequest(StrictModel):
    extra_specs: Annotated[ExtraSpecs, AfterValidator(check_specs)]


class ExtraSpecItem(RootModel[dict[SpecKey, Text255]]):
    """PUT /flavors/{id}/os-extra_specs/{key}: {key: value}, the key matching the URL."""

    root: Annotated[
        dict[SpecKey, Text255], Field(min_length=1, max_length=1), AfterValidator(check_specs)
    ]
