"""What a guest asks of Placement: resources and traits built from its flavor (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from filemem.common.page_size import avoids_file_backed_memory
from filemem.common.resources import (
    IMAGE_MEM_PAGE_SIZE,
    MEM_PAGE_SIZE,
    MEMORY_BACKING_FILE_TRAIT,
    guest_resources,
)
from filemem.exceptions import InvalidInput

AGGREGATE_SCOPE = "aggregate_instance_extra_specs"


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class RequestSpec:
    """One guest to place: who owns it (the Placement consumer), its flavor and image properties."""

    instance_uuid: str
    project_id: str
    user_id: str
    memory_mb: int
    vcpus: int
    disk_gb: int = 0
    extra_specs: Mapping[str, str] = field(default_factory=dict)
    # Placement member_of values ("in:a,b", "!in:c"): the availability zone's aggregates
    # (nova's map_az_to_placement_aggregate); in_tree: the provider of an admin's forced host.
    member_of: tuple[str, ...] = ()
    in_tree: str | None = None
    image_properties: Mapping[str, str] = field(default_factory=dict)
    # Providers the guest must not go to (a live migration's source: nova's ignore_hosts).
    excluded_providers: frozenset[str] = frozenset()


@dataclass(frozen=True)
class PlacementRequest:
    """Resources to allocate on one provider, and the traits it must or must not have."""

    resources: Mapping[str, int]
    required_traits: frozenset[str] = frozenset()
    forbidden_traits: frozenset[str] = frozenset()
    # The flavor's hw:mem_page_size and the image's hw_mem_page_size (None when unset), kept so
    # refusals can quote them.
    mem_page_size: str | None = None
    member_of: tuple[str, ...] = ()
    in_tree: str | None = None
    image_mem_page_size: str | None = None
    # What the host's aggregates' metadata must match: key -> requirement (nova's
    # AggregateInstanceExtraSpecsFilter), and the metadata, host name -> merged metadata, read
    # once per request by the scheduler when there are requirements (None: not read).
    aggregate_specs: Mapping[str, str] = field(default_factory=dict)
    aggregate_metadata: Mapping[str, Mapping[str, str]] | None = None
    excluded_providers: frozenset[str] = frozenset()

    @property
    def wants_huge_pages(self) -> bool:
        return avoids_file_backed_memory(self.mem_page_size, self.image_mem_page_size)

    def page_size_words(self) -> str:
        """E.g. "hw:mem_page_size=large, image hw_mem_page_size=2MB" for refusals."""
        words = []
        if self.mem_page_size is not None:
            words.append(f"{MEM_PAGE_SIZE}={self.mem_page_size}")
        if self.image_mem_page_size is not None:
            words.append(f"image {IMAGE_MEM_PAGE_SIZE}={self.image_mem_page_size}")
        return ", ".join(words)

    def describe(self) -> str:
        """E.g. "MEMORY_MB:4096, VCPU:2 without COMPUTE_MEM_BACKING_FILE" for messages."""
        text = ", ".join(f"{rc}:{amount}" for rc, amount in self.resources.items())
        if self.required_traits:
            text += " with " + ", ".join(sorted(self.required_traits))
        if self.forbidden_traits:
            text += " without " + ", ".join(sorted(self.forbidden_traits))
        if self.member_of:
            text += " member_of " + " and ".join(self.member_of)
        if self.in_tree:
            text += f" in_tree {self.in_tree}"
        return text


def _check_sizes(spec: RequestSpec) -> None:
    for name, value, least in (
        ("memory_mb", spec.memory_mb, 1),
        ("vcpus", spec.vcpus, 1),
        ("disk_gb", spec.disk_gb, 0),
    ):
        # bool is an int subclass: a True here is a caller bug, not one vCPU.
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise InvalidInput(f"flavor {name} must be an integer >= {least}, not {value!r}")


def aggregate_requirements(extra_specs: Mapping[str, str]) -> dict[str, str]:
    """nova's scoping: keys scoped aggregate_instance_extra_specs:KEY, and unscoped keys,
    must match aggregate metadata KEY; keys of any other scope (hw:..., quota:...) are not
    about aggregates."""
    wanted: dict[str, str] = {}
    for key, requirement in extra_specs.items():
        scope, sep, rest = key.partition(":")
        if not sep:
            wanted[key] = requirement
        elif scope == AGGREGATE_SCOPE:
            wanted[rest] = requirement
    return wanted


def build_request(spec: RequestSpec) -> PlacementRequest:
    """The Placement request for a guest of this flavor.

    MEMORY_MB and VCPU always, DISK_GB only when the flavor has a root disk (Placement refuses
    zero amounts). A page size from the flavor (hw:mem_page_size) or the image
    (hw_mem_page_size) forbids COMPUTE_MEM_BACKING_FILE: file-backed memory and huge pages
    exclude each other, and other hosts still qualify.
    """
    _check_sizes(spec)
    resources = guest_resources(spec.memory_mb, spec.vcpus, spec.disk_gb)
    page_size = spec.extra_specs.get(MEM_PAGE_SIZE)
    image_page_size = spec.image_properties.get(IMAGE_MEM_PAGE_SIZE)
    forbidden = (
        frozenset({MEMORY_BACKING_FILE_TRAIT})
        if avoids_file_backed_memory(page_size, image_page_size)
        else frozenset()
    )
    return PlacementRequest(
        resources=_frozen(resources),
        forbidden_traits=forbidden,
        mem_page_size=page_size,
        member_of=spec.member_of,
        in_tree=spec.in_tree,
        image_mem_page_size=image_page_size,
        aggregate_specs=_frozen(aggregate_requirements(spec.extra_specs)),
        excluded_providers=spec.excluded_providers,
    )
