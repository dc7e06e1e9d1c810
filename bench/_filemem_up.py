"""`filemem up` as a subprocess for benchmarks: config, start, ready file, SIGTERM."""

from __future__ import annotations

import configparser
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

from bench._common import REPO
from devtools.services import ReadyFile, ServiceProcess

UP_TIMEOUT_S = 120.0
STOP_S = 30.0
FILE_BACKED_MEMORY_MB = 4096
FILEMEM = REPO / ".venv" / "bin" / "filemem"


# -- `filemem up` ----------------------------------------------------------------------------


def write_conf(state: Path) -> Path:
    parser = configparser.ConfigParser()
    parser["DEFAULT"] = {
        "state_path": str(state),
        "ram_allocation_ratio": "1.0",
        "shutdown_timeout": "5",
    }
    parser["libvirt"] = {"virt_type": "qemu", "file_backed_memory": str(FILE_BACKED_MEMORY_MB)}
    parser["api"] = {"bind_host": "127.0.0.1", "bind_port": "0"}
    path = state / "filemem.conf"
    with path.open("w") as handle:
        parser.write(handle)
    return path


@contextlib.contextmanager
def filemem_up(state: Path) -> Iterator[tuple[str, str]]:
    """Run `filemem up --ready-file` on loopback; yields (endpoint, token); SIGTERM on exit.

    stderr (the log) goes to <state>/up.log.
    """
    conf = write_conf(state)
    ready = state / "ready"
    up = ServiceProcess(
        [FILEMEM, "--config-file", str(conf), "up", "--ready-file", str(ready)],
        log_path=state / "up.log",
        ready=ReadyFile(ready),
        cwd=REPO,
        name="`filemem up`",
        start_timeout=UP_TIMEOUT_S,
        stop_timeout=STOP_S,
    )
    up.start()
    try:
        client = json.loads((state / "client.json").read_text())
        yield str(client["endpoint"]), str(client["token"])
    finally:
        up.stop()
        if up.killed:
            print(f"# `filemem up` (pid {up.pid}) ignored SIGTERM for {STOP_S:.0f} s: killed it")
