"""A libvirt connection that reopens itself after loss and delivers lifecycle events."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import libvirt

from filemem.virt.libvirt.errors import translated

LOG = logging.getLogger(__name__)

_EVENT_NAMES = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: "defined",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: "pmsuspended",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
}


@dataclass(frozen=True)
class LifecycleEvent:
    uuid: str
    name: str
    event: str
    detail: int


EventCallback = Callable[[LifecycleEvent], None]

_loop_lock = threading.Lock()
_loop_started = False


def _ensure_event_loop() -> None:
    """libvirt needs one event loop per process, registered before any connection is opened."""
    global _loop_started
    with _loop_lock:
        if _loop_started:
            return
        libvirt.virEventRegisterDefaultImpl()

        def run() -> None:
            while True:
                libvirt.virEventRunDefaultImpl()

        threading.Thread(target=run, name="libvirt-events", daemon=True).start()
        _loop_started = True


# libvirt logs every error to stderr by default as well as raising it; we report them ourselves.
def _silence(_ctx: Any, _err: Any) -> None:
    return None


class Connection:
    """Lazily opened; `get()` reopens when libvirtd went away (restart, crash)."""

    def __init__(self, uri: str, on_event: EventCallback | None = None) -> None:
        self.uri = uri
        self._on_event = on_event
        self._conn: libvirt.virConnect | None = None
        self._lock = threading.RLock()
        libvirt.registerErrorHandler(_silence, None)

    def get(self) -> libvirt.virConnect:
        with self._lock:
            if self._conn is not None:
                try:
                    if self._conn.isAlive():
                        return self._conn
                except libvirt.libvirtError:
                    pass
                LOG.warning("libvirt connection to %s lost; reconnecting", self.uri)
                self._drop()
            self._conn = self._open()
            return self._conn

    def _open(self) -> libvirt.virConnect:
        _ensure_event_loop()
        with translated(f"connecting to libvirt at {self.uri}"):
            conn = libvirt.open(self.uri)
        try:
            conn.setKeepAlive(5, 3)
            conn.registerCloseCallback(self._closed, None)
            if self._on_event is not None:
                conn.domainEventRegisterAny(
                    None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._lifecycle, None
                )
        except libvirt.libvirtError as exc:
            LOG.warning("libvirt events unavailable on %s: %s", self.uri, exc)
        return conn

    def _closed(self, _conn: Any, reason: int, _opaque: Any) -> None:
        LOG.warning("libvirt closed the connection to %s (reason %d)", self.uri, reason)

    def _lifecycle(self, _conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
        if self._on_event is None:
            return
        try:
            self._on_event(
                LifecycleEvent(
                    uuid=dom.UUIDString(),
                    name=dom.name(),
                    event=_EVENT_NAMES.get(event, str(event)),
                    detail=detail,
                )
            )
        except Exception:  # an event handler must never kill libvirt's event thread
            LOG.exception("lifecycle event handler failed")

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    def close(self) -> None:
        with self._lock:
            self._drop()

    def versions(self) -> tuple[int, int]:
        """(libvirt, hypervisor) versions as libvirt's integers, read from the live daemon."""
        conn = self.get()
        with translated("reading libvirt and QEMU versions"):
            return conn.getLibVersion(), conn.getVersion()
