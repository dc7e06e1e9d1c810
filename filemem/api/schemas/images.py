"""POST /image/v2/images (glance's create): a kernel (+initrd, cmdline) or a disk file by path."""

from __future__ import annotations

import posixpath
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator
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


class GlanceImageCreate(StrictModel):
    """glance's create body; filemem's paths and command line are image properties in it."""

    name: Name
    disk_format: Literal["aki", "qcow2", "raw"] | None = None
    container_format: Literal["bare"] | None = None
    visibility: Literal["public"] | None = None
    kernel_path: ImagePath | None = None
    initrd_path: ImagePath | None = None
    cmdline: Cmdline | None = None
    disk_path: ImagePath | None = None
    hw_mem_page_size: PageSize | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> GlanceImageCreate:
        if self.cmdline is not None and not self.cmdline.isprintable():
            raise _invalid("cmdline must not contain control characters")
        if (self.kernel_path is None) == (self.disk_path is None):
            raise _invalid("give either kernel_path (a kernel image) or disk_path (a disk image)")
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

    def kind(self) -> Literal["kernel", "disk"]:
        return "kernel" if self.kernel_path is not None else "disk"

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
        return {key: value for key, value in named.items() if value is not None}
