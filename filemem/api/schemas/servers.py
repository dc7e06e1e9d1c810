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


class BlockDeviceMapping(StrictModel):
    """One block_device_mapping_v2 entry, with nova's fields; only an image boot is served."""

    boot_index: int | str | None = None
    uuid: Ref | None = None
    source_type: Literal["image", "volume", "snapshot", "blank"] | None = None
    destination_type: Literal["local", "volume"] | None = None
    delete_on_termination: bool | None = None
    volume_size: int | None = None
    device_name: Text255 | None = None
    device_type: Text255 | None = None
    disk_bus: Text255 | None = None
    guest_format: Text255 | None = None
    no_device: bool | None = None
    tag: Text255 | None = None
    volume_type: Text255 | None = None

    def unsupported(self) -> str | None:
        """Why filemem cannot serve this entry, or None for the image boot it can."""
        if self.source_type != "image":
            return (
                f"source_type {self.source_type or '(none)'}: filemem has no block "
                "storage, it boots from an image only"
            )
        if (self.destination_type or "local") != "local":
            return "destination_type volume: filemem has no block storage"
        if str(self.boot_index) != "0":
            return f"boot_index {self.boot_index}: only the boot disk (boot_index 0) is served"
        if self.volume_size or self.no_device or self.guest_format:
            return "volume_size, no_device and guest_format are not supported"
        if not self.uuid:
            return "an image boot needs the image's uuid"
        return None


class ServerCreate(StrictModel):
    name: Name
    flavorRef: Ref
    # Optional as in nova: python-openstackclient also names the image in the BDM below.
    imageRef: Annotated[str, Field(max_length=1024)] | None = None
    block_device_mapping_v2: Annotated[list[BlockDeviceMapping], Field(max_length=16)] | None = None
    metadata: Metadata | None = None
    # Accepted so stock clients work; filemem boots one server per request, with no network.
    min_count: One | None = None
    max_count: One | None = None
    networks: Literal["auto", "none"] | Annotated[list[Any], Field(max_length=0)] | None = None

    @model_validator(mode="after")
    def _one_image(self) -> ServerCreate:
        mappings = self.block_device_mapping_v2 or []
        for index, mapping in enumerate(mappings):
            why = mapping.unsupported()
            if why is not None:
                raise PydanticCustomError(
                    "filemem_invalid",
                    "block_device_mapping_v2[{index}] is not supported: {why}",
                    {"index": index, "why": why},
                )
        if len(mappings) > 1:
            raise PydanticCustomError(
                "filemem_invalid",
                "block_device_mapping_v2 may hold one entry, the image boot: filemem has no "
                "block storage for further disks",
            )
        from_mapping = mappings[0].uuid if mappings else None
        if not self.imageRef and not from_mapping:
            raise PydanticCustomError(
                "filemem_invalid", "imageRef (or an image block_device_mapping_v2) is required"
            )
        if self.imageRef and from_mapping and self.imageRef.rsplit("/", 1)[-1] != from_mapping:
            raise PydanticCustomError(
                "filemem_invalid",
                "imageRef {ref} and block_device_mapping_v2 image {uuid} differ",
                {"ref": self.imageRef, "uuid": from_mapping},
            )
        return self

    @property
    def image_ref(self) -> str:
        """The image to boot, from imageRef or the image BDM (validated to exist and agree)."""
        if self.imageRef:
            return self.imageRef
        mappings = self.block_device_mapping_v2 or []
        assert mappings and mappings[0].uuid is not None
        return mappings[0].uuid

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
