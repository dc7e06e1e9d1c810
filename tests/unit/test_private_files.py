"""Private files: databases (with SQLite's -wal/-shm) and secrets 0600, the state dir 0711."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from sqlalchemy import text

from filemem.common.private_files import private_file, private_sqlite, state_dir, write_private
from filemem.db.session import Database


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_a_new_sqlite_database_and_its_wal_are_the_owners_only(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        database = Database(f"sqlite:///{tmp_path / 'filemem.sqlite'}")
        with database.engine.connect() as conn:
            conn.execute(text("CREATE TABLE t (x TEXT)"))
            conn.execute(text("INSERT INTO t VALUES ('console output')"))
            names = sorted(p.name for p in tmp_path.iterdir())
            assert names == ["filemem.sqlite", "filemem.sqlite-shm", "filemem.sqlite-wal"]
            assert {p.name: mode(p) for p in tmp_path.iterdir()} == dict.fromkeys(names, 0o600)
        database.engine.dispose()
    finally:
        os.umask(old)


def test_an_earlier_runs_readable_database_is_made_private(tmp_path: Path) -> None:
    for name in ("placement.sqlite", "placement.sqlite-wal", "placement.sqlite-shm"):
        (tmp_path / name).write_bytes(b"kept")
        os.chmod(tmp_path / name, 0o644)
    private_sqlite(f"sqlite:///{tmp_path / 'placement.sqlite'}")
    assert [mode(p) for p in sorted(tmp_path.iterdir())] == [0o600] * 3
    assert (tmp_path / "placement.sqlite").read_bytes() == b"kept"
    assert not (tmp_path / "placement.sqlite-journal").exists()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "postgresql://u@h/db"])
def test_urls_without_a_file_are_left_alone(url: str) -> None:
    private_sqlite(url)


def test_a_symlink_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("x")
    os.chmod(target, 0o644)
    (tmp_path / "db.sqlite").symlink_to(target)
    with pytest.raises(OSError):
        private_file(tmp_path / "db.sqlite")
    assert mode(target) == 0o644


def test_secrets_are_written_private_and_replaced_whole(tmp_path: Path) -> None:
    path = tmp_path / "client.json"
    path.write_text("old")
    os.chmod(path, 0o644)
    write_private(path, "new")
    assert path.read_text() == "new" and mode(path) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["client.json"]


def test_the_state_dir_can_be_searched_but_not_listed_by_others(tmp_path: Path) -> None:
    existing = tmp_path / "state"
    existing.mkdir(mode=0o755)
    os.chmod(existing, 0o755)
    assert mode(state_dir(existing)) == 0o711
    assert mode(state_dir(tmp_path / "new" / "state")) == 0o711
