"""The service launcher against tiny `python -c` children: ready signals, deaths, timeouts, stop."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from devtools.services import (
    ReadyFile,
    ReadyLine,
    ReadyLog,
    ServiceError,
    ServiceProcess,
    python_module,
)


def child(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


LISTENS = (
    "import sys, time\n"
    "print('warming up'); print('demo listening on http://127.0.0.1:1234')\n"
    "print('more', file=sys.stderr, flush=True); time.sleep(60)"
)


def test_ready_line_returns_group_one_and_stop_sends_sigterm(tmp_path: Path) -> None:
    service = ServiceProcess(
        child(LISTENS),
        log_path=tmp_path / "logs" / "demo.log",
        ready=ReadyLine(r"listening on (http://\S+)"),
    )
    with service as url:
        assert url == "http://127.0.0.1:1234" == service.ready_value
        assert service.running
        assert service.output()[:2] == ["warming up", "demo listening on http://127.0.0.1:1234"]
        assert service.wait_log("^more$", timeout=10) == ["more"]
    assert service.returncode == -signal.SIGTERM and not service.killed
    assert service.stop() == -signal.SIGTERM  # again: nothing more to do


def test_ready_file_waits_for_a_complete_line_and_env_cwd_apply(tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    ready.write_text("stale\n")  # from an earlier run: must not count
    code = (
        "import os, sys, time\n"
        "open(sys.argv[1], 'w').write(os.getcwd() + ' ' + os.environ['DEMO'])\n"
        "time.sleep(0.3)\n"
        "open(sys.argv[1], 'a').write('\\n'); time.sleep(60)"
    )
    service = ServiceProcess(
        child(code, str(ready)),
        log_path=tmp_path / "demo.log",
        ready=ReadyFile(ready),
        cwd=tmp_path,
        env={"DEMO": "yes"},
    )
    try:
        assert service.start(timeout=30) == f"{tmp_path} yes"
    finally:
        service.stop()


def test_ready_log_matches_only_this_starts_lines(tmp_path: Path) -> None:
    log = tmp_path / "demo.log"
    log.write_text("agent ready: 9 (an earlier run)\n")
    code = (
        "import sys, time\n"
        "time.sleep(0.2); print('agent ready: 3 guests', file=sys.stderr, flush=True)\n"
        "time.sleep(60)"
    )
    with ServiceProcess(child(code), log_path=log, ready=ReadyLog(r"ready: (\d+)")) as found:
        assert found == "3"
    assert log.read_text().startswith("agent ready: 9 (an earlier run)\nagent ready: 3")


def test_death_before_ready_raises_with_the_log_tail(tmp_path: Path) -> None:
    code = "import sys; print('config is broken', file=sys.stderr); sys.exit(3)"
    service = ServiceProcess(
        child(code), log_path=tmp_path / "demo.log", name="demo", ready=ReadyLine("listening")
    )
    started = time.monotonic()
    with pytest.raises(ServiceError) as info:
        service.start(timeout=60)
    assert time.monotonic() - started < 30  # noticed the death, did not sit out the timeout
    assert info.value.returncode == 3
    assert "config is broken" in info.value.log_tail
    assert str(info.value).startswith("demo exited with 3 before it was ready")
    assert "config is broken" in str(info.value)


def test_ready_line_printed_just_before_exiting_still_counts(tmp_path: Path) -> None:
    service = ServiceProcess(
        child("print('ready')"), log_path=tmp_path / "demo.log", ready=ReadyLine("^ready$")
    )
    assert service.start() == "ready"
    assert service.wait(10) == 0


def test_timeout_stops_the_service_and_names_it(tmp_path: Path) -> None:
    code = "import time; print('not the line', flush=True); time.sleep(60)"
    service = ServiceProcess(
        child(code), log_path=tmp_path / "demo.log", ready=ReadyLine("listening")
    )
    with pytest.raises(ServiceError) as info:
        service.start(timeout=0.5)
    assert info.value.returncode is None  # it was still running at the deadline
    assert "not ready after 0.5 s" in str(info.value)
    assert "not the line" in str(info.value)  # what it did print is shown
    assert service.returncode == -signal.SIGTERM and not service.running


def test_stop_kills_a_service_that_ignores_sigterm(tmp_path: Path) -> None:
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True)\n"
        "time.sleep(60)"
    )
    service = ServiceProcess(
        child(code), log_path=tmp_path / "demo.log", ready=ReadyLine("up"), stop_timeout=0.3
    )
    service.start()
    assert service.stop() == -signal.SIGKILL and service.killed


def test_wait_log_fails_when_the_service_exits(tmp_path: Path) -> None:
    code = "import sys; print('one', file=sys.stderr)"
    service = ServiceProcess(child(code), log_path=tmp_path / "demo.log")
    assert service.start() == ""  # no ready signal: returns once spawned
    with pytest.raises(ServiceError, match="exited with 0; 'one' logged 1 of 2 times"):
        service.wait_log("one", timeout=30, count=2)
    with pytest.raises(RuntimeError, match="already started"):
        service.start()


def test_python_module_and_names(tmp_path: Path) -> None:
    argv = python_module("json.tool", "--help")
    assert argv == [sys.executable, "-m", "json.tool", "--help"]
    assert ServiceProcess(argv, log_path=tmp_path / "x.log").name == "json.tool"
    assert ServiceProcess(["/bin/true"], log_path=tmp_path / "x.log").name == "true"
    with pytest.raises(RuntimeError, match="not been started"):
        ServiceProcess(["/bin/true"], log_path=tmp_path / "x.log").wait(1)
    missing = ServiceProcess([str(tmp_path / "no-such-program")], log_path=tmp_path / "x.log")
    with pytest.raises(FileNotFoundError):
        missing.start()
    assert missing.stop() is None and not missing.running
