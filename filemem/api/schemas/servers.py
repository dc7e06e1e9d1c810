"""POST /servers, PUT /servers/{id}, server metadata and tags bodies, and server action bodies."""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from filemem.api.schemas.common import Name, Ref, StrictModel, Text255
from filemem.common.instance_metadata import (
    MAX_USER_DATA_BYTES,
    InvalidUserData,
    decode_user_data,
)

# nova's parameter_types.metadata: keys of these characters, values up to 255; how many items
# is a quota (403 at the API), not a schema rule.
MetaKey = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[a-zA-Z0-9-_:. ]{1,255}$")]
MetaValue = Annotated[str, Field(max_length=255)]
Metadata = dict[MetaKey, MetaValue]
# nova's parameter_types.positive_integer: an integer, or a string of digits, at least 1.
Count = Annotated[int, Field(ge=1)] | Annotated[str, Field(pattern=r"^[0-9]*[1-9][0-9]*$")]
# nova's parameter_types.boolean: JSON booleans and the usual spellings of them.
BoolLike = bool | Literal[
    "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes", "y", "t",
    "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no", "n", "f",
]  # fmt: skip
TRUE_WORDS = frozenset(
    {"True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes", "y", "t"}
)
FALSE_WORDS = frozenset(
    {"False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no", "n", "f"}
)
# nova's parameter_types.tag (MAX_TAG_LENGTH 60), and MAX_TAG_COUNT 50 per server.
MAX_TAGS = 50
Tag = Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[^,/]*$")]


def _ipv4(value: str) -> str:
    ipaddress.IPv4Address(value)  # its ValueError names the value
    return value


def _ipv6(value: str) -> str:
    ipaddress.IPv6Address(value)
    return value


# nova's parameter_types.accessIPv4 / accessIPv6: an address of that family.
AccessIPv4 = Annotated[str, AfterValidator(_ipv4)]
AccessIPv6 = Annotated[str, AfterValidator(_ipv6)]


def is_true(value: bool | str) -> bool:
    return value if isinstance(value, bool) else value in TRUE_WORDS


def _base64(value: str) -> str:
    try:
        decode_user_data(value)
    except InvalidUserData as exc:
        raise PydanticCustomError("base64", str(exc)) from None
    return value


# nova's user_data: base64 text of at most 65535 characters, kept as given.
UserData = Annotated[str, Field(max_length=MAX_USER_DATA_BYTES), AfterValidator(_base64)]


class NetworkRequest(StrictModel):
    """One entry of nova's networks list; filemem has no networking, so none is served."""

    fixed_ip: Text255 | None = None
    port: Text255 | None = None
    uuid: Text255 | None = None
    tag: Text255 | None = None


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
    # From 2.19 (the handler refuses it below); null is allowed as in nova.
    description: Text255 | None = None
    key_name: Name | None = None
    min_count: Count | None = None
    max_count: Count | None = None
    return_reservation_id: BoolLike | None = None
    # nova's parameter_types.name: "zone", or an admin's "zone:host" / "zone::node".
    availability_zone: Name | None = None
    # Which values are served depends on the microversion: the handler decides (2.37).
    networks: (
        Literal["auto", "none"] | Annotated[list[NetworkRequest], Field(max_length=64)] | None
    ) = None
    user_data: UserData | None = None
    config_drive: BoolLike | None = None
    # nova accepts these; filemem, like nova's libvirt driver without password injection,
    # answers adminPass but sets nothing in the guest, and keeps no access addresses.
    adminPass: Annotated[str, Field(max_length=255)] | None = None
    accessIPv4: AccessIPv4 | None = None
    accessIPv6: AccessIPv6 | None = None
    disk_config: Literal["AUTO", "MANUAL"] | None = Field(None, alias="OS-DCF:diskConfig")

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
    def _counts(self) -> ServerCreate:
        low, high = self.counts
        if low > high:
            raise PydanticCustomError("filemem_invalid", "min_count must be <= max_count")
        return self

    @property
    def counts(self) -> tuple[int, int]:
        """(min_count, max_count) as nova reads them: max defaults to min, min to 1."""
        low = int(self.min_count) if self.min_count is not None else 1
        return low, int(self.max_count) if self.max_count is not None else low


# nova's scheduler hints: an object of any keys; those whose filter is not enabled are ignored.
SchedulerHints = Annotated[dict[Annotated[str, Field(max_length=255)], Any], Field(max_length=64)]


class ServerCreateRequest(StrictModel):
    server: ServerCreate
    scheduler_hints: SchedulerHints | None = Field(None, alias="os:scheduler_hints")
    scheduler_hints_old: SchedulerHints | None = Field(None, alias="OS-SCH-HNT:scheduler_hints")

    @model_validator(mode="after")
    def _no_server_group(self) -> ServerCreateRequest:
        """nova refuses a group it does not know; filemem has no server groups at all."""
        for hints in (self.scheduler_hints, self.scheduler_hints_old):
            if hints and "group" in hints:
                raise PydanticCustomError(
                    "filemem_invalid",
                    "os:scheduler_hints group: filemem has no server groups",
                )
        return self


class ServerUpdate(StrictModel):
    """PUT /servers/{id}: name, and description from 2.19 (null removes it)."""

    name: Name | None = None
    description: Text255 | None = None


class ServerUpdateRequest(StrictModel):
    server: ServerUpdate


class MetadataRequest(StrictModel):
    """POST and PUT /servers/{id}/metadata."""

    metadata: Metadata


class MetaItemRequest(StrictModel):
    """PUT /servers/{id}/metadata/{key}: exactly one item, named as in the URL."""

    meta: Annotated[Metadata, Field(min_length=1, max_length=1)]


class TagsRequest(StrictModel):
    """PUT /servers/{id}/tags: the whole set (2.26)."""

    tags: Annotated[list[Tag], Field(max_length=MAX_TAGS)]
