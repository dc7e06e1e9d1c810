"""A standalone filemem-placement subprocess on loopback, and a filemem config for tests."""

from __future__ import annotations

import socket
from pathlib import Path

from oslo_config import cfg

from devtools.services import ReadyLine, ServiceProcess, python_module
from filemem import conf as filemem_conf

__all__ = ["REPO", "StandalonePlacement", "conf_text", "free_port", "load_conf"]

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class StandalonePlacement(ServiceProcess):
    """`python -m filemem.cmd.placement` (real Placement, SQLite) on 127.0.0.1; `with` gives
    its URL, stderr goes to <state>/stderr.log."""

    def __init__(self, state: Path, port: int = 0) -> None:
        super().__init__(
            python_module(
                "filemem.cmd.placement",
                "--state-path",
                str(state),
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
            ),
            log_path=state / "stderr.log",
            cwd=REPO,
            ready=ReadyLine(r"^placement listening on (http://127\.0\.0\.1:\d+)$"),
        )
        self.state = state
        self.port = port

    @property
    def url(self) -> str:
        return self.ready_value


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
