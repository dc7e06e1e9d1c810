"""A standalone filemem-placement subprocess on loopback, and a filemem config for tests."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

from oslo_config import cfg

from filemem import conf as filemem_conf

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


class StandalonePlacement:
    """`python -m filemem.cmd.placement` (real Placement, SQLite) on 127.0.0.1."""

    def __init__(self, state: Path, port: int = 0) -> None:
        self.state = state
        self.port = port
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None

    def start(self, timeout: float = 60.0) -> str:
        self.state.mkdir(parents=True, exist_ok=True)
        self._stderr = (self.state / "stderr.log").open("w")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "filemem.cmd.placement", "--state-path", str(self.state),
             "--bind", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=self._stderr, text=True)
        assert self._proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(self._proc.stdout, lines), daemon=True).start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise AssertionError("placement did not start: " + self.log()) from None
        assert line.startswith("placement listening on http://127.0.0.1:"), line + self.log()
        self.url = line.split(" on ", 1)[1].strip()
        return self.url

    def log(self) -> str:
        path = self.state / "stderr.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def conf_text(
    state_path: Path,
    endpoint: str,
    *,
    host: str = "test-host",
    file_backed_memory: int = 2048,
    extra_default: str = "",
    extra_libvirt: str = "",
) -> str:
    """A filemem.conf for a TCG, file-backed test host on a standalone Placement."""
    return (
        f"[DEFAULT]\nhost = {host}\nstate_path = {state_path}\n"
        f"ram_allocation_ratio = 1.0\n{extra_default}\n"
        f"[libvirt]\nvirt_type = qemu\nconnection_uri = qemu:///system\n"
        f"file_backed_memory = {file_backed_memory}\n{extra_libvirt}\n"
        f"[placement]\nendpoint = {endpoint}\ntoken = admin\n"
    )


def load_conf(path: Path, text: str) -> cfg.ConfigOpts:
    path.write_text(text)
    return filemem_conf.load(config_files=[str(path)])
