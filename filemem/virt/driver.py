"""The hypervisor driver interface: guest lifecycle on one host, with documented errors."""

from __future__ import annotations

from typing import Protocol

from filemem.common.guests import Flavor, GuestInfo, HostFacts, Image


class HypervisorDriver(Protocol):
    """Lifecycle of guests on this host.

    Every method raises HypervisorUnavailable when the hypervisor cannot be reached,
    HypervisorError (with the hypervisor's message) when it refuses, and GuestNotFound for
    an unknown uuid.
    """

    def host_facts(self) -> HostFacts:
        """What guest config needs to know about this host, read from the live hypervisor."""

    def spawn(
        self, name: str, uuid: str, flavor: Flavor, image: Image, owner: str = "cli",
    ) -> GuestInfo:
        """Define and start a guest. Raises InvalidGuestConfig, InsufficientBackingStore,
        GuestAlreadyExists; on failure nothing of the guest is left behind."""

    def power_off(self, uuid: str, timeout: float | None = None) -> bool:
        """Graceful shutdown, destroyed after `timeout` seconds; True when it was graceful."""

    def power_on(self, uuid: str) -> GuestInfo:
        """Start a stopped guest (the capacity guard applies again)."""

    def reboot(self, uuid: str, hard: bool = False) -> GuestInfo:
        """Soft: graceful stop then start; hard: destroy then start."""

    def destroy(self, uuid: str) -> bool:
        """Stop, undefine and remove every file of the guest; False when it did not exist."""

    def list_guests(self) -> list[GuestInfo]:
        """Guests managed by filemem on this host, with power state and memory-file usage."""

    def get_guest(self, uuid: str) -> GuestInfo:
        """One guest, by uuid."""
