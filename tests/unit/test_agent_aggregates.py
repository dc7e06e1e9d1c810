"""The agent and its host's aggregates: a refused registration stops it with the API's
reason; the registration's ratio is what its resource sync reports to Placement."""

from __future__ import annotations

import threading
import uuid as uuidlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from filemem import conf as filemem_conf
from filemem.cmd import compute as compute_cmd
from filemem.common.resources import MEMORY_MB
from filemem.compute.agent_api import RegistrationRefused
from filemem.compute.host import ComputeHost
from filemem.compute.reconcile.loop import ReconcileLoop
from filemem.placement.embedded import EmbeddedPlacement
from filemem.virt.fake import FakeDriver
from tests.unit.test_agent_fake_driver import FakeAgentApi

REASON = "host h has file-backed memory but is in aggregate over (id 3): ..."


class RefusingApi(FakeAgentApi):
    def register(
        self,
        host: str,
        provider_uuid: str,
        file_backed_memory_mb: int,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        raise RegistrationRefused(f"PUT: 409: {REASON}", 409, REASON)


class RatioApi(FakeAgentApi):
    ratio: float | None = 1.5

    def register(  # type: ignore[override]
        self,
        host: str,
        provider_uuid: str,
        file_backed_memory_mb: int,
        details: Mapping[str, Any] | None = None,
    ) -> float | None:
        self.registered.append(host)
        return self.ratio


def _host(tmp_path: Path, placement: EmbeddedPlacement, file_backed_mb: int) -> ComputeHost:
    state = tmp_path / "state"
    config = tmp_path / "filemem.conf"
    config.write_text(
        f"[DEFAULT]\nhost = agg-{uuidlib.uuid4().hex[:8]}\nstate_path = {state}\n"
        "ram_allocation_ratio = 1.0\n"
        f"[libvirt]\nvirt_type = qemu\nfile_backed_memory = {file_backed_mb}\n"
    )
    conf = filemem_conf.load(config_files=[str(config)])
    driver = FakeDriver(
        state_path=state, backing_dir=tmp_path / "ram", file_backed_memory_mb=file_backed_mb
    )
    return ComputeHost.from_conf(conf, driver=driver, client=placement.client())


def test_a_refused_registration_stops_the_loop_with_the_reason(
    tmp_path: Path, embedded_placement: EmbeddedPlacement
) -> None:
    host = _host(tmp_path, embedded_placement, 2048)
    stop = threading.Event()
    loop = ReconcileLoop(host, RefusingApi(), wait=0, retry_interval=0.01, stop=stop)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive() and stop.is_set()
    assert loop.refused == REASON


def test_the_agent_refuses_to_start_naming_the_aggregate(
    tmp_path: Path, embedded_placement: EmbeddedPlacement, capsys: pytest.CaptureFixture[str]
) -> None:
    host = _host(tmp_path, embedded_placement, 2048)
    loop = ReconcileLoop(host, RefusingApi(), wait=0)
    assert compute_cmd._first_registration(loop) is False
    err = capsys.readouterr().err
    assert "aggregate over (id 3)" in err and "refusing to start" in err


def test_the_registrations_ratio_is_what_the_sync_reports(
    tmp_path: Path, embedded_placement: EmbeddedPlacement
) -> None:
    host = _host(tmp_path, embedded_placement, 0)
    api = RatioApi()
    loop = ReconcileLoop(host, api, wait=0)
    host.tracker.sync()
    provider = host.tracker.provider_uuid

    def ratio() -> float:
        return float(host.client.get_inventories(provider)[1][MEMORY_MB]["allocation_ratio"])

    assert ratio() == 1.0
    loop.heartbeat()
    host.tracker.sync()
    assert ratio() == 1.5
    api.ratio = None
    loop.heartbeat()
    host.tracker.sync()
    assert ratio() == 1.0
