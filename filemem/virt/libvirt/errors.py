"""Translation of libvirt errors into filemem's exceptions, keeping libvirt's own message."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import libvirt

from filemem.exceptions import (
    GuestAlreadyExists,
    GuestNotFound,
    HypervisorError,
    HypervisorUnavailable,
)

_UNAVAILABLE_CODES = frozenset(
    {
        libvirt.VIR_ERR_NO_CONNECT,
        libvirt.VIR_ERR_INVALID_CONN,
        libvirt.VIR_ERR_RPC,
        libvirt.VIR_ERR_SYSTEM_ERROR,
    }
)


def translate(action: str, exc: libvirt.libvirtError) -> Exception:
    code = exc.get_error_code()
    message = exc.get_error_message() or str(exc)
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return GuestNotFound(f"{action}: {message}")
    if code == libvirt.VIR_ERR_DOM_EXIST:
        return GuestAlreadyExists(f"{action}: {message}")
    if code in _UNAVAILABLE_CODES and exc.get_error_domain() in (
        libvirt.VIR_FROM_RPC,
        libvirt.VIR_FROM_REMOTE,
    ):
        return HypervisorUnavailable(action, message, code)
    return HypervisorError(action, message, code)


@contextmanager
def translated(action: str) -> Iterator[None]:
    """Run a block of libvirt calls; a libvirtError leaves as one of our exceptions."""
    try:
        yield
    except libvirt.libvirtError as exc:
        raise translate(action, exc) from exc
