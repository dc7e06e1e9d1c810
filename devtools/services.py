"""A service as a subprocess: started, waited on until ready, its log kept, stopped by SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TypeAlias

from filemem.exceptions import FilememError

POLL_S = 0.05
TAIL_CHARS = 3000
STDOUT_TAIL_LINES = 20
# A grandchild that inherited stdout can keep the pipe open after the service died.
PUMP_JOIN_S = 5.0


class ServiceError(FilememError):
    """The service died, or was not ready (or did not log) in time; the message has its log tail.

    `returncode` is the exit status when it had exited (negative: killed by that signal), None
    when it was still running at the deadline (start() then stopped it).
    """

    def __init__(
        self, message: str, *, argv: Sequence[str], returncode: int | None, log_tail: str
    ) -> None:
        super().__init__(message)
        self.argv = list(argv)
        self.returncode = returncode
        self.log_tail = log_tail


@dataclass(frozen=True)
class ReadyLine:
    """Ready once a stdout line matches `pattern` (re.search); the value is group 1 if the
    pattern has a group, else the whole match."""

    pattern: str


@dataclass(frozen=True)
class ReadyFile:
    """Ready once `path` holds a complete line (its text ends with a newline); the value is the
    text, stripped. start() removes a stale file first."""

    path: Path


@dataclass(frozen=True)
class ReadyLog:
    """Ready once a line the service writes to its log (stderr) matches `pattern`; the value as
    for ReadyLine."""

    pattern: str


Ready: TypeAlias = ReadyLine | ReadyFile | ReadyLog | None


def python_module(module: str, *args: str) -> list[str]:
    """The argv of `python -m module args...` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def _value(match: re.Match[str]) -> str:
    return match.group(1) if match.re.groups else match.group(0)


def _describe(argv: Sequence[str]) -> str:
    """`python -m x` is named x, anything else by its program's file name."""
    if len(argv) > 2 and argv[1] == "-m":
        return argv[2]
    return Path(argv[0]).name


class ServiceProcess:
    """One service: `argv` run in `cwd` with `env` added to os.environ (PYTHONUNBUFFERED=1 too).

    stderr is appended to `log_path`; stdout is read by a thread, kept (output()) and matched
    against a ReadyLine. start() waits for `ready` (None: returns at once) and returns its value;
    stop() sends SIGTERM and SIGKILLs after the timeout. `with` starts and stops it, and binds
    the ready value (a URL, usually).
    """

    def __init__(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        log_path: Path,
        ready: Ready = None,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        name: str | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 20.0,
    ) -> None:
        self.argv = [os.fspath(arg) for arg in argv]
        self.log_path = log_path
        self.ready = ready
        self.cwd = cwd
        self.env = dict(env or {})
        self.name = name or _describe(self.argv)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.ready_value = ""
        self.killed = False  # stop() had to SIGKILL it
        self._proc: subprocess.Popen[str] | None = None
        self._log: IO[bytes] | None = None
        self._log_offset = 0  # where this start's part of the (appended) log begins
        self._pump: threading.Thread | None = None
        self._lines: list[str] = []
        self._scanned = 0  # stdout lines already matched against a ReadyLine
        self._changed = threading.Condition()

    # -- life cycle -------------------------------------------------------------------------

    def start(self, timeout: float | None = None) -> str:
        """Spawn and wait until ready; returns the ready value. On failure it is stopped.

        One start per object: a restart is a new ServiceProcess (the log is appended to).
        """
        if self._proc is not None:
            raise RuntimeError(f"{self.name} was already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(self.ready, ReadyFile):
            self.ready.path.unlink(missing_ok=True)
        self._log = self.log_path.open("ab")
        self._log_offset = self._log.tell()
        try:
            self._proc = subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env},
                stdout=subprocess.PIPE,
                stderr=self._log,
                text=True,
                errors="replace",
            )
        except OSError:
            self._finish()  # no such program, or cwd: nothing runs, the log closes
            raise
        assert self._proc.stdout is not None
        self._pump = threading.Thread(
            target=self._read_stdout,
            args=(self._proc.stdout,),
            name=f"{self.name}-stdout",
            daemon=True,
        )
        self._pump.start()
        try:
            self.ready_value = self._wait_ready(self.start_timeout if timeout is None else timeout)
        except BaseException:
            self.stop()
            raise
        return self.ready_value

    def stop(self, timeout: float | None = None, *, sig: int = signal.SIGTERM) -> int | None:
        """Send `sig`, wait `timeout` s, then SIGKILL; returns the exit status (None: never
        started). Safe to call again, or after the service exited on its own."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(self.stop_timeout if timeout is None else timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                proc.kill()
                proc.wait()
        self._finish()
        return proc.returncode

    def wait(self, timeout: float) -> int:
        """Wait for the service to exit by itself; ServiceError (it keeps running) if it does
        not within `timeout` s."""
        proc = self._started()
        try:
            code = proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise self._error(f"still running after {timeout:g} s") from None
        self._finish()
        return code

    def _finish(self) -> None:
        if self._pump is not None:
            self._pump.join(PUMP_JOIN_S)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- state and output -------------------------------------------------------------------

    @property
    def pid(self) -> int:
        return self._started().pid

    @property
    def returncode(self) -> int | None:
        """The exit status once it exited, None while it runs (or before start)."""
        return None if self._proc is None else self._proc.poll()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def output(self) -> list[str]:
        """The stdout lines read so far, without their newlines."""
        with self._changed:
            return list(self._lines)

    def log(self) -> str:
        """The whole log file (every start's stderr), or "" before there is one."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, chars: int = TAIL_CHARS) -> str:
        return self.log()[-chars:]

    def wait_log(self, pattern: str, timeout: float, count: int = 1) -> list[str]:
        """The first `count` lines of this start's log matching `pattern` (re.search), waiting
        up to `timeout` s; ServiceError if the service exits or time runs out first."""
        self._started()
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            exited = self.returncode is not None
            found = [line for line in self._log_lines() if regex.search(line)]
            if len(found) >= count:
                return found[:count]
            if exited:
                raise self._error(
                    f"exited with {self.returncode}; {pattern!r} logged "
                    f"{len(found)} of {count} times"
                )
            if time.monotonic() >= deadline:
                raise self._error(
                    f"{pattern!r} logged {len(found)} of {count} times in {timeout:g} s"
                )
            time.sleep(POLL_S)

    # -- internals --------------------------------------------------------------------------

    def _started(self) -> subprocess.Popen[str]:
        if self._proc is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._proc

    def _read_stdout(self, stream: IO[str]) -> None:
        with stream:
            for line in stream:
                with self._changed:
                    self._lines.append(line.rstrip("\n"))
                    self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def _log_lines(self) -> list[str]:
        """Complete lines written to the log since this start (a partial last one waits)."""
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(self._log_offset)
                data = handle.read()
        except FileNotFoundError:
            return []
        return data[: data.rfind(b"\n") + 1].decode(errors="replace").splitlines()

    def _wait_ready(self, timeout: float) -> str:
        proc = self._started()
        deadline = time.monotonic() + timeout
        while True:
            exited = proc.poll() is not None
            if exited and self._pump is not None:
                self._pump.join(PUMP_JOIN_S)  # every line it printed is in before the last look
            value = self._probe()
            if value is not None:
                return value
            if exited:
                raise self._error(f"exited with {proc.returncode} before it was ready")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self._error(f"not ready after {timeout:g} s")
            with self._changed:  # a new stdout line ends the nap early
                self._changed.wait(min(POLL_S, remaining))

    def _probe(self) -> str | None:
        """The ready value if the service is ready now, else None."""
        ready = self.ready
        if ready is None:
            return ""
        if isinstance(ready, ReadyFile):
            try:
                text = ready.path.read_text(errors="replace")
            except FileNotFoundError:
                return None
            return text.strip() if text.endswith("\n") else None
        if isinstance(ready, ReadyLog):
            lines = self._log_lines()
        else:
            lines = self.output()[self._scanned :]
            self._scanned += len(lines)
        regex = re.compile(ready.pattern)
        for line in lines:
            match = regex.search(line)
            if match:
                return _value(match)
        return None

    def _error(self, what: str) -> ServiceError:
        tail = self.tail()
        message = f"{self.name} {what}\n--- {self.log_path} (last {TAIL_CHARS} chars) ---\n"
        message += tail or "(empty)"
        stdout = self.output()[-STDOUT_TAIL_LINES:]
        if stdout:
            message += f"\n--- stdout (last {STDOUT_TAIL_LINES} lines) ---\n" + "\n".join(stdout)
        return ServiceError(message, argv=self.argv, returncode=self.returncode, log_tail=tail)
