"""`python -m devtools.counted_api ARGS`: filemem-api with its SQL statements counted (bench)."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sqlalchemy import Engine, make_url

from devtools import query_count
from filemem.cmd import api
from filemem.cmd.common import load_conf
from filemem.conf.database import connection_url


def main(argv: Sequence[str] | None = None) -> int:
    """filemem-api's main, with FILEMEM_QUERY_COUNT_FILE counting its database's statements."""
    args = api.build_parser().parse_args(argv)
    url = make_url(connection_url(load_conf(args)))
    # Every Engine is listened to, so filemem needs no benchmark hook of its own; only
    # filemem's database counts (an embedded Placement has an engine of its own).
    query_count.install_from_env(Engine, url=url)
    return api.main(argv)


if __name__ == "__main__":
    sys.exit(main())
