"""os-services bodies: enable/disable a host's service, and force it down (2.11)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from filemem.api.schemas.common import HostName, Name, StrictModel, Text255

# nova's parameter_types.boolean: JSON booleans and these strings.
TRUE_STRINGS = ("True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes", "y", "t")
FALSE_STRINGS = ("False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no", "n", "f")
BooleanString = Literal[
    "True", "TRUE", "true", "1", "ON", "On", "on", "YES", "Yes", "yes", "y", "t",
    "False", "FALSE", "false", "0", "OFF", "Off", "off", "NO", "No", "no", "n", "f",
]  # fmt: skip


class ServiceToggle(StrictModel):
    host: HostName
    binary: Name


class ServiceDisableWithReason(ServiceToggle):
    disabled_reason: Annotated[Text255, Field(min_length=1)]


class ServiceForceDown(ServiceToggle):
    """PUT /os-services/force-down (2.11); nova answers a missing forced_down itself."""

    forced_down: bool | BooleanString | None = None

    def forced(self) -> bool | None:
        if self.forced_down is None or isinstance(self.forced_down, bool):
            return self.forced_down
        return self.forced_down in TRUE_STRINGS
