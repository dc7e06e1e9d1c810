"""os-services bodies: enable/disable a host's service."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from filemem.api.schemas.common import HostName, Name, StrictModel, Text255


class ServiceToggle(StrictModel):
    host: HostName
    binary: Name


class ServiceDisableWithReason(ServiceToggle):
    disabled_reason: Annotated[Text255, Field(min_length=1)]
