"""`filemem up` as a subprocess for benchmarks: config, start, ready file, SIGTERM."""

from __future__ import annotations

import configparser
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from bench._common import REPO

UP_TIMEOUT_S = 120.0
FILE_BACKED_MEMORY_MB = 4096
FILEMEM = REPO / ".venv" / "bin" / "filemem"


# -- `filemem up` ----------------------------------------------------------------------------


def write_conf(state: Path) -> Path:
    parser = configparser.ConfigParser()
    parser["DEFAULT"] = {"state_path": str(state), "ram_allocation_ratio": "1.0",
                         "shutdown_timeout": "5"}
    parser["libvirt"] = {"virt_type": "qemu", "file_backed_memory": str(FILE_BACKED_MEMORY_MB)}
    parser["api"] = {"bind_host": "127.0.0.1", "bind_port": "0"}
    path = state / "filemem.conf"
    with path.open("w") as handle:
        parser.write(handle)
    return path


def log_tail(state: Path, chars: int = 2000) -> str:
    with contextlib.suppress(OSError):
        return (state / "up.log").read_text(errors="replace")[-chars:]
    return "(no log)"


def wait_ready_file(proc: subprocess.Popen[bytes], state: Path) -> None:
    ready = state / "ready"
    deadline = time.monotonic() + UP_TIMEOUT_S
    while not (ready.is_file() and ready.read_text().endswith("\n")):
        if proc.poll() is not None:
            raise RuntimeError(f"`filemem up` exited with {proc.returncode}:\n{log_tail(state)}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"`filemem up` not ready after {UP_TIMEOUT_S:.0f} s:\n"
                               f"{log_tail(state)}")
        time.sleep(0.1)


def stop_up(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        print(f"# `filemem up` (pid {proc.pid}) ignored SIGTERM for 30 s: killing it")
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def filemem_up(state: Path) -> Iterator[tuple[str, str]]:
    """Run `filemem up --ready-file` on loopback; yields (endpoint, token); SIGTERM on exit."""
    conf = write_conf(state)
    with (state / "up.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(FILEMEM), "--config-file", str(conf), "up", "--ready-file", str(state / "ready")],
            stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_ready_file(proc, state)
        client = json.loads((state / "client.json").read_text())
        yield str(client["endpoint"]), str(client["token"])
    finally:
        stop_up(proc)
