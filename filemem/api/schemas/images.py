"""POST /images (filemem's extension): a kernel (+initrd, cmdline) or a disk file."""

from __future__ import annotations

import posixpath
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from filemem.api.schemas.common import Name, StrictModel


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


class ImageCreate(StrictModel):
    name: Name
    kind: Literal["kernel", "disk"]
    kernel_path: ImagePath | None = None
    initrd_path: ImagePath | None = None
    cmdline: Cmdline = ""
    disk_path: ImagePath | None = None
    disk_format: Literal["qcow2", "raw"] | None = None

    @model_validator(mode="after")
    def _matches_kind(self) -> ImageCreate:
        if not self.cmdline.isprintable():
            raise PydanticCustomError(
                "filemem_invalid", "cmdline must not contain control characters"
            )
        if self.kind == "kernel":
            if not self.kernel_path:
                raise PydanticCustomError("filemem_invalid", "a kernel image needs kernel_path")
            if self.disk_path or self.disk_format:
                raise PydanticCustomError(
                    "filemem_invalid", "a kernel image takes no disk_path/disk_format"
                )
        else:
            if not self.disk_path:
                raise PydanticCustomError("filemem_invalid", "a disk image needs disk_path")
            if self.kernel_path or self.initrd_path or self.cmdline:
                raise PydanticCustomError(
                    "filemem_invalid", "a disk image takes no kernel_path/initrd_path/cmdline"
                )
            if self.disk_format is None:
                self.disk_format = "qcow2"
        return self

    def paths(self) -> dict[str, str]:
        named = {
            "kernel_path": self.kernel_path,
            "initrd_path": self.initrd_path,
            "disk_path": self.disk_path,
        }
        return {field: path for field, path in named.items() if path}
