"""POST /image/v2/images (glance's create): a kernel (+initrd, cmdline) or a disk file by path,
or a queued image whose data is uploaded next (PUT .../file), with glance's string properties."""

from __future__ import annotations

import posixpath
import uuid as uuidlib
from typing import Annotated, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from filemem.api.schemas.common import Name, StrictModel
from filemem.api.schemas.flavors import PAGE_SIZE_RE


def _absolute(value: str) -> str:
    if "\x00" in value or not value.isprintable():
        raise ValueError("must not contain control characters")
    if not value.startswith("/"):
        raise ValueError("must be an absolute path")
    if ".." in value.split("/"):
        raise ValueError("must not contain '..'")
    return posixpath.normpath(value)


ImagePath = Annotated[str, Field(min_length=2, max_length=4096), AfterValidator(_absolute)]
Cmdline = Annotated[str, Field(max_length=4096)]


def _page_size(value: str) -> str:
    if not PAGE_SIZE_RE.match(value):
        raise ValueError(f"hw_mem_page_size {value!r} is not small, large, any or a size")
    return value


# nova reads it only under a flavor whose hw:mem_page_size is large or any (common/page_size.py).
PageSize = Annotated[str, Field(max_length=255), AfterValidator(_page_size)]


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("filemem_invalid", message)


# glance's attributes a client may not set (403 "Attribute ... is read-only"), and filemem's own
# names, which a property must not shadow.
READ_ONLY = frozenset(
    {
        "status", "size", "virtual_size", "checksum", "os_hash_algo", "os_hash_value",
        "created_at", "updated_at", "self", "file", "schema", "direct_url", "locations",
    }
)  # fmt: skip
FILEMEM_NAMES = frozenset({"kind", "filemem_kind"})
PROPERTY_VALUE_MAX = 65535
Visibility = Literal["public", "private", "shared", "community"]


class GlanceImageCreate(StrictModel):
    """glance's create body; filemem's paths and command line are image properties in it.
    Neither kernel_path nor disk_path: a queued image, its data uploaded next."""

    # glance takes any further string property (the openstack CLI sends
    # owner_specified.openstack.md5/sha256/object): kept in model_extra, checked below.
    model_config = ConfigDict(extra="allow")

    id: str | None = Field(default=None, max_length=36)
    name: Name | None = None
    disk_format: Literal["aki", "qcow2", "raw"] | None = None
    container_format: Literal["bare"] | None = None
    visibility: Visibility | None = None
    protected: bool = False
    min_disk: int = Field(default=0, ge=0, le=2**31 - 1)
    min_ram: int = Field(default=0, ge=0, le=2**31 - 1)
    tags: list[str] = Field(default_factory=list, max_length=0)
    kernel_path: ImagePath | None = None
    initrd_path: ImagePath | None = None
    cmdline: Cmdline | None = None
    disk_path: ImagePath | None = None
    hw_mem_page_size: PageSize | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> GlanceImageCreate:
        self._check_extra()
        if self.cmdline is not None and not self.cmdline.isprintable():
            raise _invalid("cmdline must not contain control characters")
        if self.kernel_path is None and self.disk_path is None:
            return self._upload()
        if self.name is None:
            raise _invalid("name is required to register an image by path")
        if self.kernel_path is not None and self.disk_path is not None:
            raise _invalid("give either kernel_path (a kernel image) or disk_path (a disk image)")
        if self.visibility not in (None, "public"):
            raise _invalid("an image registered by path is public")
        if self.kernel_path is not None:
            if self.disk_format not in (None, "aki"):
                raise _invalid("disk_format of a kernel image (kernel_path) must be aki")
        else:
            if self.initrd_path is not None or self.cmdline is not None:
                raise _invalid("a disk image (disk_path) takes no initrd_path or cmdline")
            if self.disk_format == "aki":
                raise _invalid("disk_format of a disk image (disk_path) must be qcow2 or raw")
            if self.disk_format is None:
                self.disk_format = "qcow2"
        return self

    def _upload(self) -> GlanceImageCreate:
        if self.initrd_path is not None or self.cmdline is not None:
            raise _invalid("initrd_path and cmdline go with kernel_path")
        if self.disk_format == "aki":
            raise _invalid("disk_format of an uploaded image must be qcow2 or raw")
        if self.id is not None:
            try:
                self.id = str(uuidlib.UUID(self.id))
            except ValueError:
                raise _invalid(f"id {self.id!r} is not a UUID") from None
        return self

    def _check_extra(self) -> None:
        for key, value in (self.model_extra or {}).items():
            if key in FILEMEM_NAMES:
                raise _invalid(f"{key} was unexpected")
            if key in READ_ONLY:
                continue  # the handler answers glance's 403
            if not key or len(key) > 255 or not key.isprintable():
                raise _invalid(f"property name {key[:64]!r} must be 1-255 printable characters")
            if not isinstance(value, str):
                raise _invalid(f"property {key}: {value!r} is not of type 'string'")
            if len(value) > PROPERTY_VALUE_MAX:
                raise _invalid(f"property {key} is longer than {PROPERTY_VALUE_MAX} characters")

    def read_only(self) -> list[str]:
        return sorted(set(self.model_extra or {}) & READ_ONLY)

    def kind(self) -> Literal["kernel", "disk"]:
        """A kernel boot, or a disk (registered by path or uploaded)."""
        return "kernel" if self.kernel_path is not None else "disk"

    def is_upload(self) -> bool:
        return self.kernel_path is None and self.disk_path is None

    def paths(self) -> dict[str, str]:
        named = {
            "kernel_path": self.kernel_path,
            "initrd_path": self.initrd_path,
            "disk_path": self.disk_path,
        }
        return {field: path for field, path in named.items() if path}

    def properties(self) -> dict[str, str]:
        """The glance image properties stored as such (filemem's paths have their own columns)."""
        named = {"hw_mem_page_size": self.hw_mem_page_size}
        extra = {k: str(v) for k, v in (self.model_extra or {}).items() if k not in READ_ONLY}
        return {**extra, **{key: value for key, value in named.items() if value is not None}}
