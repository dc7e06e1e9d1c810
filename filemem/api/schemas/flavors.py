"""POST /flavors and os-extra_specs bodies."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, RootModel

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
from filemem.api.schemas.servers import FALSE_WORDS, TRUE_WORDS

SPEC_KEY_PATTERN = r"^[a-zA-Z0-9-_:. ]+$"
SpecKey = Annotated[str, Field(min_length=1, max_length=255, pattern=SPEC_KEY_PATTERN)]
ExtraSpecs = Annotated[dict[SpecKey, Text255], Field(max_length=256)]
# nova's validator for hw:mem_page_size (nova/api/validation/extra_specs/hw.py).
PAGE_SIZE_RE = re.compile(r"^(large|small|any|\d+([kKMGT]i?)?(b|bit|B)?)$")


def _digits(value: object) -> object:
    """nova's flavor_param_positive / _non_negative: an integer or a string of digits."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return value


def _id_text(value: object) -> object:
    """nova's flavor_id may be a JSON number; nova stores str(id)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _boolean(value: object) -> object:
    """nova's parameter_types.boolean: true and false, or the usual words for them."""
    if isinstance(value, str) and value in TRUE_WORDS | FALSE_WORDS:
        return value in TRUE_WORDS
    return value


class FlavorCreate(StrictModel):
    name: Name
    ram: Annotated[MemoryMb, BeforeValidator(_digits)]
    vcpus: Annotated[Vcpus, BeforeValidator(_digits)]
    disk: Annotated[DiskGb, BeforeValidator(_digits)]
    id: Annotated[FlavorId, BeforeValidator(_id_text)] | None = None
    ephemeral: Annotated[Literal[0], BeforeValidator(_digits)] = Field(
        0, alias="OS-FLV-EXT-DATA:ephemeral"
    )
    swap: Annotated[Literal[0, ""], BeforeValidator(_digits)] = 0
    rxtx_factor: Annotated[float, Field(gt=0, le=65535)] = 1.0
    is_public: Annotated[bool, BeforeValidator(_boolean)] = Field(
        True, alias="os-flavor-access:is_public"
    )
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
