"""A filemem service as a subprocess on loopback: started, its URL read, stopped with SIGTERM."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[2]


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


class ServiceProcess:
    """`python -m <module> <args>`; ready once stdout says "<ready_prefix> http://...".

    stderr goes to `<state>/<log_name>`; `log()` returns it for failure messages.
    """

    def __init__(self, module: str, args: list[str], state: Path, ready_prefix: str,
                 log_name: str) -> None:
        self.module = module
        self.args = args
        self.state = state
        self.ready_prefix = ready_prefix
        self.log_path = state / log_name
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: IO[str] | None = None

    def start(self, timeout: float = 60.0) -> str:
        self.state.mkdir(parents=True, exist_ok=True)
        self._stderr = self.log_path.open("w")
        self._proc = subprocess.Popen(
            [sys.executable, "-m", self.module, *self.args], cwd=REPO, stdout=subprocess.PIPE,
            stderr=self._stderr, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self._proc.stdout is not None
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=_pump, args=(self._proc.stdout, lines), daemon=True).start()
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            self.stop()
            raise AssertionError(f"{self.module} did not start: {self.log()}") from None
        expected = f"{self.ready_prefix} http://127.0.0.1:"
        assert line.startswith(expected), line + self.log()
        self.url = line.split(" on ", 1)[1].strip()
        return self.url

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 20.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
