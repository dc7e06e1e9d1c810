"""Talk to a cloud-init guest from the host: an ssh key, ssh with list argv, a memory check."""

from __future__ import annotations

import hashlib
import shlex
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024
SSH_FAILED = 255
# The guest fills a tmpfs file (its RAM) with this line repeated; zero pages would prove little.
FILL_LINE = b"filemem-debian-guest\n"
SSH_OPTIONS = (
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "BatchMode=yes",
    "-o",
    # It bounds the banner exchange too, which took over 5 s on a loaded host under TCG.
    "ConnectTimeout=60",
    "-o",
    "LogLevel=ERROR",
)


@dataclass(frozen=True)
class SshKey:
    private: Path
    public_text: str


def make_ssh_key(directory: Path) -> SshKey:
    """A fresh ed25519 key pair in directory (no passphrase)."""
    private = directory / "id_ed25519"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "filemem-test", "-f", str(private)],
        check=True,
        capture_output=True,
    )
    return SshKey(private=private, public_text=private.with_suffix(".pub").read_text().strip())


def ssh(
    key: SshKey, user: str, address: str, command: list[str], timeout: float = 120.0
) -> subprocess.CompletedProcess[str]:
    """Run command (argv, quoted for the remote shell by shlex) on the guest; never raises on exit
    status, so callers can assert on it. ssh's own failures (exit 255: a banner exchange that
    timed out on a loaded host) are retried twice, so commands must be idempotent."""
    remote = shlex.join(command)
    argv = ["ssh", "-i", str(key.private), *SSH_OPTIONS, f"{user}@{address}", remote]
    for _ in range(2):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != SSH_FAILED:
            return done
        time.sleep(2)
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)


def wait_for_ssh(key: SshKey, user: str, address: str, timeout: float = 1200.0) -> float:
    """Seconds until `true` runs over ssh; AssertionError with the last error after timeout."""
    start = time.monotonic()
    last = ""
    while time.monotonic() - start < timeout:
        try:
            # A refused or unanswered connection fails in ConnectTimeout; a login itself can
            # take minutes on a loaded host under TCG, and cutting it short would only restart it.
            done = ssh(key, user, address, ["true"], timeout=300)
        except subprocess.TimeoutExpired:
            last = "ssh timed out"
            continue
        if done.returncode == 0:
            return time.monotonic() - start
        last = done.stderr.strip()
        time.sleep(2)
    raise AssertionError(f"no ssh to {user}@{address} within {timeout} s: {last}")


def wait_for_cloud_init(key: SshKey, user: str, address: str, timeout: float = 900.0) -> str:
    """Block until cloud-init has run every stage in the guest; returns its status line(s)."""
    start = time.monotonic()
    while True:
        remaining = max(1.0, timeout - (time.monotonic() - start))
        done = ssh(key, user, address, ["cloud-init", "status", "--wait"], timeout=remaining)
        # 255 is ssh's own failure (a connection that timed out), not cloud-init's answer.
        if done.returncode != SSH_FAILED or time.monotonic() - start >= timeout:
            break
        time.sleep(2)
    # "status: error" (exit 1) means a module failed: the image's own modules must all succeed.
    if "status: done" not in done.stdout:
        raise AssertionError(f"cloud-init did not finish: {done.stdout} {done.stderr}")
    return done.stdout.strip()


def memory_check_command(mb: int) -> list[str]:
    """Write mb MiB of FILL_LINE into /dev/shm (guest RAM), read it back, print its sha256."""
    script = (
        "set -e; f=/dev/shm/filemem-fill.$$; "
        f"yes {FILL_LINE.decode().strip()} | head -c {mb * MIB} > $f; "
        "sync; sha256sum < $f | cut -d' ' -f1; rm -f $f"
    )
    return ["sh", "-c", script]


def expected_fill_sha256(mb: int) -> str:
    """What memory_check_command(mb) prints when every byte came back as written."""
    size = mb * MIB
    return hashlib.sha256((FILL_LINE * (size // len(FILL_LINE) + 1))[:size]).hexdigest()
