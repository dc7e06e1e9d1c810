"""os-aggregates bodies: create, update, and the add_host/remove_host/set_metadata actions
(nova's schemas/aggregates.py at 2.1)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from filemem.api.schemas.common import Name, StrictModel


def _no_colon(value: str) -> str:
    # nova's az_name: "zone:host" is how a server asks for a host, so a zone has no colon.
    if ":" in value:
        raise ValueError("an availability zone name must not contain ':'")
    return value


AzName = Annotated[Name, AfterValidator(_no_colon)]
# nova's parameter_types.fqdn.
Host = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[a-zA-Z0-9-._]*$")]
MetaKey = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[a-zA-Z0-9-_:. ]{1,255}$")]
MetaValue = Annotated[str, Field(max_length=255)]


class AggregateCreate(StrictModel):
    name: Name
    availability_zone: AzName | None = None


class AggregateCreateRequest(StrictModel):
    aggregate: AggregateCreate


class AggregateUpdate(StrictModel):
    name: Name | None = None
    availability_zone: AzName | None = None

    @model_validator(mode="after")
    def _something(self) -> AggregateUpdate:
        if not self.model_fields_set:
            raise PydanticCustomError(
                "filemem_invalid",
                "Invalid input for field/attribute aggregate: it needs name or availability_zone",
            )
        if "name" in self.model_fields_set and self.name is None:
            raise PydanticCustomError(
                "filemem_invalid", "Invalid input for field/attribute aggregate.name: None"
            )
        return self


class AggregateUpdateRequest(StrictModel):
    aggregate: AggregateUpdate


class HostBody(StrictModel):
    host: Host


class MetadataBody(StrictModel):
    # A null value deletes the key.
    metadata: dict[MetaKey, MetaValue | None]


class AggregateAction(StrictModel):
    """POST /os-aggregates/{id}/action: exactly one of the three actions."""

    add_host: HostBody | None = None
    remove_host: HostBody | None = None
    set_metadata: MetadataBody | None = None

    @model_validator(mode="after")
    def _one(self) -> AggregateAction:
        given = [name for name in self.model_fields_set if getattr(self, name) is not None]
        if len(given) != 1:
            raise PydanticCustomError(
                "filemem_invalid",
                "Invalid input for field/attribute action: exactly one of add_host, "
                "remove_host, set_metadata is required",
            )
        return self
