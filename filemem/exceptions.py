"""The project's exception hierarchy: every error an operator may see is a FilememError."""

from __future__ import annotations


class FilememError(Exception):
    """Base class: the message is meant for an operator, in plain words."""


class ConfigError(FilememError):
    """A configuration option has a value the service cannot work with."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option


class InvalidInput(FilememError):
    """A request (name, size, image path...) is malformed."""


class InvalidGuestConfig(FilememError):
    """The requested guest cannot run on this host as configured (e.g. huge pages)."""


class HypervisorError(FilememError):
    """libvirt reported an error; the libvirt message and code are kept."""

    def __init__(self, action: str, libvirt_message: str, code: int | None = None) -> None:
        super().__init__(f"{action} failed: {libvirt_message}")
        self.action = action
        self.libvirt_message = libvirt_message
        self.code = code


class HypervisorUnavailable(HypervisorError):
    """The libvirt daemon cannot be reached."""


class MigrationNotSupported(FilememError):
    """This guest cannot be live-migrated by this driver (the reason says why)."""


class GuestNotFound(FilememError):
    """No guest with that uuid/name is defined on this host."""


class GuestAlreadyExists(FilememError):
    """A guest with that uuid or name is already defined on this host."""


class InsufficientBackingStore(FilememError):
    """The backing store cannot hold the guest's memory right now."""


class PlacementError(FilememError):
    """Placement answered with an error or could not be reached; its own message is kept."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
