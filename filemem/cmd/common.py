"""Helpers shared by the command-line tools: config loading, tables, JSON output, waiting."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from oslo_config import cfg

from filemem import conf as filemem_conf
from filemem.exceptions import InvalidInput


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config-file", action="append", metavar="PATH",
        help="configuration file (repeatable; default /etc/filemem/filemem.conf if it exists)",
    )


def load_conf(args: argparse.Namespace) -> cfg.ConfigOpts:
    files = args.config_file
    for path in files or []:
        if not Path(path).is_file():
            raise SystemExit(f"error: --config-file {path}: no such file")
    return filemem_conf.load(config_files=files)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, sort_keys=True, default=str)
    sys.stdout.write("\n")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    cells = [[str(h) for h in headers]] + [["" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    line = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    print(line)
    for index, row in enumerate(cells):
        print("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |")
        if index == 0:
            print(line)
    print(line)


def mib(num_bytes: int | None) -> str:
    return "" if num_bytes is None else f"{num_bytes / (1024 * 1024):.1f}"


def wait_until(
    what: str, done: Callable[[], bool], timeout: float, interval: float = 0.25,
    quiet: bool = False,
) -> bool:
    """Poll `done` with a one-line progress display on stderr; False on timeout."""
    start = time.monotonic()
    while True:
        elapsed = time.monotonic() - start
        if done():
            if not quiet:
                sys.stderr.write(f"\r{what}: done in {elapsed:.1f} s{' ' * 10}\n")
            return True
        if elapsed >= timeout:
            if not quiet:
                sys.stderr.write(f"\r{what}: timed out after {timeout:.0f} s\n")
            return False
        if not quiet and sys.stderr.isatty():
            sys.stderr.write(f"\r{what}: {elapsed:.0f} s")
            sys.stderr.flush()
        time.sleep(interval)


def parse_properties(pairs: list[str]) -> dict[str, str]:
    """--property KEY=VALUE options (flavor extra specs) as a dict."""
    specs = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--property {pair!r}: expected KEY=VALUE")
        specs[key] = value
    return specs
