"""A throwaway PostgreSQL cluster for tests: initdb + pg_ctl as user postgres, loopback only."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

from tests.functional.placement_fixtures import free_port

PG_BIN = Path(os.environ.get("FILEMEM_PG_BIN", "/usr/lib/postgresql/15/bin"))
OWNER = "postgres"


class PostgresCluster:
    """initdb in a temp dir owned by postgres, started on 127.0.0.1 and a private socket dir.

    Missing binaries raise AssertionError: the test that needs PostgreSQL fails, never skips.
    """

    def __init__(self, database: str = "filemem") -> None:
        self.database = database
        self.port = 0
        self.root: Path | None = None

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{OWNER}@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            list(args),
            user=OWNER,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, f"{args[0]} failed: {result.stdout}{result.stderr}"

    def _check_binaries(self) -> None:
        for tool in ("initdb", "pg_ctl", "postgres"):
            path = PG_BIN / tool
            assert path.is_file(), (
                f"PostgreSQL is not installed ({path} is missing): apt-get install postgresql"
            )
        try:
            pwd.getpwnam(OWNER)
        except KeyError:
            raise AssertionError(f"no system user {OWNER!r}: apt-get install postgresql") from None

    def start(self) -> str:
        self._check_binaries()
        self.root = Path(tempfile.mkdtemp(prefix="filemem-pg-", dir="/var/tmp"))
        owner = pwd.getpwnam(OWNER)
        os.chown(self.root, owner.pw_uid, owner.pw_gid)
        self._run(
            str(PG_BIN / "initdb"),
            "-D",
            str(self.data),
            "-U",
            OWNER,
            "-A",
            "trust",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self.port = free_port()
        # Settings go into postgresql.conf rather than through pg_ctl -o, which is a shell
        # string; fsync off because the cluster is thrown away.
        settings = (
            f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.root}'\nfsync = off\n"
            "max_connections = 200\n"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(settings)
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "postgres.log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user=OWNER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        return self.url

    def log(self) -> str:
        path = self.root / "postgres.log" if self.root else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    def stop(self) -> None:
        if self.root is None:
            return
        if (self.data / "postmaster.pid").exists():
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def __enter__(self) -> str:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
