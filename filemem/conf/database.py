"""[database] options: where filemem-api keeps instances, flavors, images and services."""

from __future__ import annotations

from pathlib import Path

from oslo_config import cfg

GROUP = "database"

OPTS: list[cfg.Opt] = [
    cfg.StrOpt(
        "connection",
        default="",
        secret=True,
        sample_default="sqlite:///<state_path>/filemem.sqlite",
        help="SQLAlchemy URL of filemem's database. SQLite (the default, under [DEFAULT] "
        "state_path) serves one filemem-api process; several filemem-api processes share a "
        "PostgreSQL database, e.g. postgresql+psycopg://filemem:PASSWORD@127.0.0.1/filemem.",
    ),
]


def connection_url(conf: cfg.ConfigOpts) -> str:
    """[database] connection, or the SQLite file under state_path when it is empty."""
    url = str(conf.database.connection or "")
    if url:
        return url
    return f"sqlite:///{Path(conf.state_path).resolve() / 'filemem.sqlite'}"
