"""libvirt and QEMU versions: parsing, printing, and the minimums file-backed memory needs."""

from __future__ import annotations

Version = tuple[int, int, int]

# Nova's guide: file-backed memory needs libvirt >= 4.0.0 and QEMU >= 2.6.0; discarding the
# memory file at shutdown needs libvirt >= 4.4.0 and QEMU >= 2.10.0.
MIN_LIBVIRT_VERSION: Version = (4, 0, 0)
MIN_QEMU_VERSION: Version = (2, 6, 0)
MIN_LIBVIRT_DISCARD_VERSION: Version = (4, 4, 0)
MIN_QEMU_DISCARD_VERSION: Version = (2, 10, 0)


def parse_version(number: int) -> Version:
    """libvirt's integer version (major * 1,000,000 + minor * 1,000 + release) as a tuple."""
    if number < 0:
        raise ValueError(f"version number {number} is negative")
    return number // 1_000_000, number // 1000 % 1000, number % 1000


def fmt_version(version: Version) -> str:
    return ".".join(str(part) for part in version)


def discard_supported(libvirt_version: Version, qemu_version: Version) -> bool:
    """Whether guests may get <discard/> (libvirt and QEMU both new enough)."""
    return (
        libvirt_version >= MIN_LIBVIRT_DISCARD_VERSION and qemu_version >= MIN_QEMU_DISCARD_VERSION
    )
