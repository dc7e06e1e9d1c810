"""Detached processes that outlive the command that started them: pid files, logs, safe stop."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from filemem.exceptions import FilememError

POLL_S = 0.1


class CloudError(FilememError):
    """A step of bringing a cloud up or down failed; the message says which and why."""


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or
    None when no such process: with the pid it names one process even after pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm (field 2) may hold spaces and parentheses: split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[19]


def record(pid_file: Path, pid: int) -> None:
    """Write `<pid> <start time>` so that stop() never signals a reused pid."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{pid} {start_time(pid) or ''}\n")


def recorded_pid(pid_file: Path) -> int | None:
    """The pid in `pid_file` if that very process still runs, else None."""
    try:
        pid_text, _, started = pid_file.read_text().strip().partition(" ")
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    now = start_time(pid)
    if now is None or (started and now != started):
        return None
    return pid


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    pid_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start `argv` in its own session (it survives our exit), stdout+stderr appended to
    `log_path`, its pid recorded in `pid_file`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    record(pid_file, proc.pid)
    return proc.pid


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie child of ours counts as gone, and is reaped)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass
    state = None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        state = stat[stat.rindex(")") + 2]
    except OSError:
        return False
    return state != "Z"


def terminate(pid: int, timeout: float = 15.0) -> bool:
    """SIGTERM, then SIGKILL after `timeout` s; True if it had to be killed."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return False
        time.sleep(POLL_S)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    while alive(pid):
        time.sleep(POLL_S)
    return True


def stop_recorded(pid_file: Path, timeout: float = 15.0) -> None:
    """Stop the process named by `pid_file` (if it is still that process), then drop the file."""
    pid = recorded_pid(pid_file)
    if pid is not None:
        terminate(pid, timeout)
    pid_file.unlink(missing_ok=True)


def wait_for(
    what: str, check: Callable[[], bool], timeout: float, on_fail: Callable[[], str] | None = None
) -> float:
    """Poll `check` until true; CloudError naming `what` (and on_fail()'s detail) on timeout.
    Returns the seconds waited."""
    start = time.monotonic()
    while True:
        if check():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            detail = on_fail() if on_fail else ""
            raise CloudError(f"{what}: not ready within {timeout:g} s{detail}")
        time.sleep(POLL_S)


def run(argv: Sequence[str], *, check: bool = True, timeout: float = 60.0) -> str:
    """Run a short command; CloudError with its output when it fails (and `check`)."""
    result = subprocess.run(
        list(argv), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise CloudError(
            f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}"
            f"{result.stdout.strip()}"
        )
    return result.stdout


def log_tail(path: Path, chars: int = 2000) -> str:
    """The end of a log file, for error messages."""
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "<no log>"
