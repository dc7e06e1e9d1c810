"""`keystone-manage` steps in one process: keystone's import costs seconds, paid once.

python -m tests.functional.keystone_manage KEYSTONE_CONF STEP [ARGS...] [-- STEP [ARGS...]]...
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def steps(args: Sequence[str]) -> list[list[str]]:
    """STEP ARGS -- STEP ARGS ... split at each "--"."""
    out: list[list[str]] = [[]]
    for arg in args:
        if arg == "--":
            out.append([])
        else:
            out[-1].append(arg)
    return [step for step in out if step]


def main(argv: Sequence[str]) -> int:
    from keystone.cmd import cli  # keystone-manage's own entry point calls cli.main(argv)

    config, *rest = argv
    for step in steps(rest):
        cli.main(argv=["keystone-manage", "--config-file", config, *step])
        # keystone parses its global CONF once per command; parse afresh for the next one.
        cli.CONF.clear()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
