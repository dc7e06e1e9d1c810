"""Detached processes of the cloud harness: pid files that never name a reused pid."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.cloud import namespaces, procs


def test_spawn_record_and_stop(tmp_path: Path) -> None:
    pid_file = tmp_path / "p.pid"
    pid = procs.spawn(
        [sys.executable, "-c", "import time; print('hi', flush=True); time.sleep(60)"],
        log_path=tmp_path / "log" / "p.log",
        pid_file=pid_file,
    )
    assert procs.recorded_pid(pid_file) == pid
    procs.wait_for("hi in log", lambda: "hi" in (tmp_path / "log" / "p.log").read_text(), 10)
    procs.stop_recorded(pid_file, timeout=5)
    assert not procs.alive(pid)
    assert not pid_file.exists()
    assert procs.recorded_pid(pid_file) is None


def test_a_reused_pid_is_not_ours(tmp_path: Path) -> None:
    pid_file = tmp_path / "p.pid"
    # Our own pid with a start time that is not ours: a different process.
    pid_file.write_text(f"{os.getpid()} 1\n")
    assert procs.recorded_pid(pid_file) is None
    procs.record(pid_file, os.getpid())
    assert procs.recorded_pid(pid_file) == os.getpid()
    pid_file.write_text("garbage\n")
    assert procs.recorded_pid(pid_file) is None


def test_start_time_of_gone_process() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert procs.start_time(child.pid) is None or not procs.alive(child.pid)


def test_run_failure_names_the_command() -> None:
    with pytest.raises(procs.CloudError, match="false failed"):
        procs.run(["false"])


def test_wait_for_times_out_with_detail() -> None:
    with pytest.raises(procs.CloudError, match=r"thing: not ready within 0\.2 s why"):
        procs.wait_for("thing", lambda: False, 0.2, lambda: " why")


def test_namespace_members_exclude_outsiders() -> None:
    # Our own process is in the root namespaces: a holder there would "contain" everything,
    # so the check is on the holder's namespace only, and a gone holder contains nothing.
    assert namespaces.pids_in_namespace(2**22 + 12345) == []
    assert namespaces.enter(42, ["virsh", "list"]) == [
        "nsenter",
        "-t",
        "42",
        "-m",
        "-n",
        "-u",
        "--",
        "virsh",
        "list",
    ]
