"""Bodies of POST /servers/{id}/action: one action per request, each validated by its model."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator

from filemem.api.errors import BadRequest, validation_message
from filemem.api.schemas.common import Name, Ref, StrictModel, Text255
from filemem.api.schemas.servers import Metadata


class NoBody(StrictModel):
    """Actions whose value is null or {} ({"pause": null})."""


class Reboot(StrictModel):
    type: Literal["SOFT", "HARD"]


class Rebuild(StrictModel):
    imageRef: Ref
    name: Name | None = None
    metadata: Metadata | None = None
    adminPass: Annotated[str, Field(max_length=255)] | None = None
    preserve_ephemeral: bool | None = None
    accessIPv4: Text255 | None = None
    accessIPv6: Text255 | None = None
    disk_config: Literal["AUTO", "MANUAL"] | None = Field(None, alias="OS-DCF:diskConfig")
    # Microversion 2.19; refused below it by the handler.
    description: Annotated[str, Field(max_length=255)] | None = None


class CreateImage(StrictModel):
    name: Name
    metadata: Metadata | None = None


class CreateBackup(StrictModel):
    name: Name
    backup_type: Annotated[str, Field(min_length=1, max_length=255)]
    rotation: Annotated[int, Field(ge=0, strict=False)]
    metadata: Metadata | None = None


class Resize(StrictModel):
    flavorRef: Ref
    disk_config: Literal["AUTO", "MANUAL"] | None = Field(None, alias="OS-DCF:diskConfig")


class ConsoleOutput(StrictModel):
    # nova accepts an integer or a numeric string; -1 or null means the whole log.
    length: int | Annotated[str, Field(pattern=r"^-?[0-9]+$")] | None = None

    @field_validator("length")
    @classmethod
    def _not_below_minus_one(cls, value: int | str | None) -> int | str | None:
        if value is not None and int(value) < -1:
            raise ValueError("must be -1 or greater")
        return value

    def lines(self) -> int | None:
        """How many lines from the end; None for all."""
        if self.length is None or int(self.length) == -1:
            return None
        return int(self.length)


class ResetState(StrictModel):
    state: Literal["active", "error"]


class LiveMigrate21(StrictModel):
    """os-migrateLive at 2.1-2.24."""

    host: Text255 | None
    block_migration: bool
    disk_over_commit: bool


class LiveMigrate225(StrictModel):
    """os-migrateLive at 2.25-2.29: block_migration may be "auto", disk_over_commit is gone."""

    host: Text255 | None
    block_migration: bool | Literal["auto"]


class LiveMigrate230(LiveMigrate225):
    """os-migrateLive from 2.30: a named host may be forced past the scheduler."""

    force: bool | None = None


def parse(model: type[BaseModel], action: str, value: Any) -> Any:
    """The action's payload validated by `model`, or a 400 naming the field under `action`."""
    if value is None and model is NoBody:
        value = {}
    try:
        return model.model_validate({} if value is None and model is ConsoleOutput else value)
    except ValidationError as exc:
        errors = [{**error, "loc": (action, *error["loc"])} for error in exc.errors()]
        raise BadRequest(validation_message(errors)) from exc
