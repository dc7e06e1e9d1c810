"""The filter interface: a host passes, or is rejected with a reason that groups with others."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from filemem.scheduler.host_state import HostState
from filemem.scheduler.request import PlacementRequest


@dataclass(frozen=True)
class Rejection:
    """Why a host was refused, in words that read after a count ("1 lacks", "3 lack").

    Hosts refused for the same words are counted together; `free`, when set, is the room the
    host had, reported as "(free N)" for one host and "(free at most N)" for several.
    """

    singular: str
    plural: str
    free: int | None = None


class BaseFilter(ABC):
    """One rule a host must satisfy; `check` returns None when the host passes.

    Filters are stateless and cheap: the cache walks hosts best-weighed first and stops at the
    first that passes, so a check runs on a few hosts per request in the common case.
    """

    @abstractmethod
    def check(self, host: HostState, request: PlacementRequest) -> Rejection | None:
        """None when `host` can take `request`, else why not."""
