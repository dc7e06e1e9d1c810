"""POST /servers and server action bodies."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from filemem.api.schemas.common import Name, Ref, StrictModel, Text255

MetaKey = Annotated[str, Field(min_length=1, max_length=255)]
# nova's default metadata_items quota.
Metadata = Annotated[dict[MetaKey, Text255], Field(max_length=128)]
One = Annotated[int, Field(ge=1, le=1)]


class ServerCreate(StrictModel):
    name: Name
    flavorRef: Ref
    imageRef: Ref
    metadata: Metadata | None = None
    # Accepted so stock clients work; filemem boots one server per request, with no network.
    min_count: One | None = None
    max_count: One | None = None
    networks: Literal["auto", "none"] | Annotated[list[Any], Field(max_length=0)] | None = None

    @model_validator(mode="after")
    def _metadata_keys(self) -> ServerCreate:
        for key in self.metadata or {}:
            if key != key.strip() or not key.isprintable():
                raise PydanticCustomError(
                    "filemem_invalid", "metadata key {key!r} is not allowed", {"key": key}
                )
        return self


class ServerCreateRequest(StrictModel):
    server: ServerCreate


class Reboot(StrictModel):
    type: Literal["SOFT", "HARD"]


class ServerAction(StrictModel):
    """Exactly one of os-start, os-stop, reboot (nova's body: {"os-stop": null})."""

    os_start: dict[str, Any] | None = Field(None, alias="os-start", max_length=0)
    os_stop: dict[str, Any] | None = Field(None, alias="os-stop", max_length=0)
    reboot: Reboot | None = None

    @model_validator(mode="before")
    @classmethod
    def _one_action(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = {"os-start", "os-stop", "reboot"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise PydanticCustomError(
                "filemem_invalid", "There is no such action: {action}", {"action": unknown[0]}
            )
        if len(data) != 1:
            raise PydanticCustomError(
                "filemem_invalid", "Exactly one action is expected in the request body"
            )
        return data

    @model_validator(mode="after")
    def _reboot_has_a_type(self) -> ServerAction:
        if "reboot" in self.model_fields_set and self.reboot is None:
            raise PydanticCustomError(
                "filemem_invalid", 'reboot needs a type: {"reboot": {"type": "SOFT"}}'
            )
        return self

    @property
    def action(self) -> str:
        fields = self.model_fields_set
        if "os_start" in fields:
            return "os-start"
        if "os_stop" in fields:
            return "os-stop"
        assert self.reboot is not None
        return "reboot_hard" if self.reboot.type == "HARD" else "reboot"
