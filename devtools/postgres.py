"""A throwaway PostgreSQL cluster (tests, simulated clouds): initdb + pg_ctl as user postgres."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql

PG_BIN = Path(os.environ.get("FILEMEM_PG_BIN", "/usr/lib/postgresql/15/bin"))
OWNER = "postgres"


def free_port(address: str = "127.0.0.1") -> int:
    """A port nothing listens on right now at `address`."""
    with socket.socket() as sock:
        sock.bind((address, 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresCluster:
    """initdb in a directory owned by postgres (a fresh temp dir unless `root` is given),
    started on `listen` (127.0.0.1) and a private socket dir; `database` is created.

    Missing binaries raise AssertionError: the test that needs PostgreSQL fails, never skips.
    """

    def __init__(
        self, database: str = "filemem", *, root: Path | None = None, listen: str = "127.0.0.1"
    ) -> None:
        self.database = database
        self.port = 0
        self.listen = listen
        self._given_root = root
        self.root: Path | None = None

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def url(self) -> str:
        return self.url_of(self.database)

    def url_of(self, database: str, driver: str = "psycopg") -> str:
        """SQLAlchemy URL of one of the cluster's databases (Placement needs psycopg2)."""
        return f"postgresql+{driver}://{OWNER}@{self.listen}:{self.port}/{database}"

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
        if self._given_root is None:
            self.root = Path(tempfile.mkdtemp(prefix="filemem-pg-", dir="/var/tmp"))
        else:
            self.root = self._given_root
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
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
        self.port = free_port(self.listen)
        # Settings go into postgresql.conf rather than through pg_ctl -o, which is a shell
        # string; fsync off because the cluster is thrown away.
        settings = (
            f"\nport = {self.port}\nlisten_addresses = '{self.listen}'\n"
            f"unix_socket_directories = '{self.root}'\nfsync = off\n"
            "max_connections = 200\n"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(settings)
        if self.listen != "127.0.0.1":
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write(f"host all all {self.listen}/32 trust\n")
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
        self.create_database(self.database)
        return self.url

    def create_database(self, name: str) -> str:
        """CREATE DATABASE name (quoted as an identifier); its psycopg URL."""
        with psycopg.connect(
            host=self.listen, port=self.port, user=OWNER, dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url_of(name)

    def log(self) -> str:
        path = self.root / "postgres.log" if self.root else None
        return path.read_text(errors="replace") if path and path.exists() else ""

    @classmethod
    def at(cls, root: Path) -> PostgresCluster:
        """The cluster started earlier (maybe by another process) in `root`, to stop it."""
        cluster = cls(root=root)
        cluster.root = root
        return cluster

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
