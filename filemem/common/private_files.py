"""Files only their owner may read (databases, secrets) and a state directory others can only
search: modes set explicitly, never left to the process's umask."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from sqlalchemy.engine import make_url

PRIVATE_FILE = 0o600
# Others may search (QEMU, as its own user, opens guests' console logs and disks below the
# state directory) but not list or read it.
STATE_DIR = 0o711
# SQLite's companions of a database file: the WAL, its shared-memory index, a rollback journal.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def state_dir(path: Path) -> Path:
    """Create `path` (and parents) and give it STATE_DIR, also when it already existed."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, STATE_DIR)
    return path


def private_file(path: Path, *, create: bool = True) -> None:
    """Create `path` empty if missing (unless not `create`: then a missing file is left
    missing), and make it the owner's only (0600), content kept. A symlink is refused
    (O_NOFOLLOW): the chmod must not land on another file."""
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | (os.O_CREAT if create else 0)
    try:
        fd = os.open(path, flags, PRIVATE_FILE)
    except FileNotFoundError:
        if create:
            raise
        return
    try:
        os.fchmod(fd, PRIVATE_FILE)
    finally:
        os.close(fd)


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text` atomically; the file is 0600 from its first byte."""
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def private_sqlite(url: str) -> None:
    """Make the SQLite database file of `url` private before SQLite opens it: SQLite creates
    its -wal and -shm with the database file's mode, so they follow. Companions left by an
    earlier run (a crash keeps them) are made private too. Other URLs: nothing to do."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return
    if database.startswith("file:"):
        # A URI filename (sqlite:///file:...?uri=true) names its file differently; not used here.
        return
    path = Path(database)
    path.parent.mkdir(parents=True, exist_ok=True)
    private_file(path)
    for suffix in SQLITE_COMPANIONS:
        private_file(path.with_name(path.name + suffix), create=False)
