"""The tail of a guest's serial console log, as nova's os-getConsoleOutput serves it."""

from __future__ import annotations

import os
from pathlib import Path

from filemem.exceptions import FilememError

# nova/virt/libvirt/driver.py MAX_CONSOLE_BYTES: the most of a console log nova returns.
MAX_CONSOLE_BYTES = 100 * 1024


def console_tail(path: Path, limit: int = MAX_CONSOLE_BYTES) -> str:
    """The last `limit` bytes of the log, decoded as UTF-8 (undecodable bytes become U+FFFD)
    and without NUL characters (no database stores them); "" when there is no log yet."""
    try:
        with open(path, "rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            handle.seek(max(0, size - limit))
            data = handle.read(limit)
    except FileNotFoundError:
        return ""
    except OSError as exc:
        raise FilememError(f"cannot read the console log {path}: {exc}") from exc
    return data.decode("utf-8", errors="replace").replace("\x00", "")
