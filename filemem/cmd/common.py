"""Helpers shared by the command-line tools: config loading, tables, JSON output, waiting."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from oslo_config import cfg
from rich import box
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from filemem import conf as filemem_conf
from filemem.exceptions import InvalidInput


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config-file",
        action="append",
        metavar="PATH",
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


def _console(stream: TextIO) -> Console:
    # Piped output (scripts, tests) gets no colour and no wrapping at 80 columns.
    if stream.isatty():
        return Console(file=stream)
    return Console(file=stream, width=1000, no_color=True, highlight=False)


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """An ASCII-boxed table as python-openstackclient prints them (rich does the layout)."""
    table = Table(box=box.ASCII, show_lines=False, highlight=False)
    for header in headers:
        table.add_column(str(header), overflow="fold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    _console(sys.stdout).print(table)


def mib(num_bytes: int | None) -> str:
    return "" if num_bytes is None else f"{num_bytes / (1024 * 1024):.1f}"


def wait_until(
    what: str,
    done: Callable[[], bool],
    timeout: float,
    interval: float = 0.25,
    quiet: bool = False,
) -> bool:
    """Poll `done` with a progress bar (elapsed against `timeout`) on stderr; False on timeout."""
    console = _console(sys.stderr)
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        TextColumn(f"of {timeout:.0f} s"),
    )
    start = time.monotonic()
    with Progress(
        *columns, console=console, transient=True, disable=quiet or not sys.stderr.isatty()
    ) as progress:
        task = progress.add_task(what, total=timeout)
        while True:
            elapsed = time.monotonic() - start
            progress.update(task, completed=min(elapsed, timeout))
            if done():
                if not quiet:
                    console.print(f"{what}: done in {elapsed:.1f} s")
                return True
            if elapsed >= timeout:
                if not quiet:
                    console.print(f"{what}: timed out after {timeout:.0f} s")
                return False
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
