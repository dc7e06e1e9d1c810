"""Which memory page size a guest gets from its flavor and its image: nova's rule, pure."""

from __future__ import annotations

from filemem.common.resources import IMAGE_MEM_PAGE_SIZE, MEM_PAGE_SIZE
from filemem.exceptions import InvalidInput

# The flavor values under which nova lets the image choose (nova's MEMPAGES_ANY, MEMPAGES_LARGE).
_IMAGE_MAY_CHOOSE = frozenset({"any", "large"})


class PageSizeForbidden(InvalidInput):
    """nova's MemoryPageSizeForbidden: the image asks for a page size its flavor does not allow."""

    def __init__(
        self, image_value: str, flavor_value: str | None, flavor_name: str, image_name: str
    ) -> None:
        against = "<empty>" if flavor_value is None else flavor_value
        flavor_words = (
            f"flavor {flavor_name!r} sets {MEM_PAGE_SIZE}={flavor_value}"
            if flavor_value is not None
            else f"flavor {flavor_name!r} does not set {MEM_PAGE_SIZE}"
        )
        super().__init__(
            f"Page size {image_value} forbidden against '{against}': image {image_name!r} sets "
            f"{IMAGE_MEM_PAGE_SIZE}={image_value} but {flavor_words}; an image may choose its "
            f"page size only when the flavor's {MEM_PAGE_SIZE} is large or any"
        )
        self.image_value = image_value
        self.flavor_value = flavor_value


def requested_page_size(
    flavor_value: str | None,
    image_value: str | None,
    *,
    flavor_name: str = "",
    image_name: str = "",
) -> str | None:
    """The page size asked for, None for the default (nova's _get_numa_pagesize_constraint).

    Only the flavor may turn huge pages on: an image value without a flavor value is refused,
    as is one under a flavor that names its page size ("small" or a size); under "any" or
    "large" the image's value wins. Unlike nova, an empty string is a value (an invalid one that
    guest config refuses), not "unset": filemem's API never stores one.
    """
    if flavor_value is None:
        if image_value is not None:
            raise PageSizeForbidden(image_value, None, flavor_name, image_name)
        return None
    if image_value is None:
        return flavor_value
    if flavor_value.strip().lower() in _IMAGE_MAY_CHOOSE:
        return image_value
    raise PageSizeForbidden(image_value, flavor_value, flavor_name, image_name)


def avoids_file_backed_memory(flavor_value: str | None, image_value: str | None) -> bool:
    """Whether the guest must stay off file-backed hosts: either source sets a page size.

    Any value, "small" included, and even a combination requested_page_size refuses: such a
    guest was meant for huge-page hosts, and file-backed memory cannot use huge pages.
    """
    return flavor_value is not None or image_value is not None
