"""Allocations follow real TCG guests; heal converges; the agent survives Placement being down."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import uuid as uuidlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.services import ServiceProcess, python_module
from devtools.test_image import TestImage
from filemem.cmd import host_show
from filemem.cmd.common import add_config_args
from filemem.common.guests import Flavor, Image, PowerState
from filemem.compute import metrics
from filemem.compute.host import ComputeHost
from filemem.compute.manager import DEFAULT_PROJECT_ID, DEFAULT_USER_ID
from filemem.exceptions import GuestAlreadyExists, InvalidGuestConfig
from filemem.virt.libvirt.driver import LibvirtDriver
from tests.functional.conftest import DriverFactory, guest_name, wait_for_console
from tests.functional.placement_fixtures import (
    REPO,
    StandalonePlacement,
    conf_text,
    free_port,
    load_conf,
)

SMALL = Flavor(name="small", vcpus=1, memory_mb=128)
HUGE_PAGES = Flavor(name="hp", vcpus=1, memory_mb=128, extra_specs={"hw:mem_page_size": "large"})


@pytest.fixture(scope="module")
def placement(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with StandalonePlacement(tmp_path_factory.mktemp("placement")) as url:
        yield url


@pytest.fixture
def image(test_image: TestImage) -> Image:
    return Image(
        kind="kernel",
        kernel=test_image.kernel,
        initrd=test_image.initrd,
        cmdline=test_image.cmdline(),
    )


HostFactory = Callable[[], ComputeHost]


@pytest.fixture
def make_host(placement: str, state_path: Path, make_driver: DriverFactory) -> HostFactory:
    """Builds the compute host as a (re)started agent does; every build shares state_path."""
    conf_file = state_path / "filemem.conf"
    conf_file.write_text(conf_text(state_path, placement, host=f"host-{state_path.name}"))

    def factory() -> ComputeHost:
        conf = load_conf(conf_file, conf_file.read_text())
        host = ComputeHost.from_conf(conf, driver=make_driver(file_backed_memory_mb=2048))
        host.tracker.sync()
        return host

    return factory


def _uuid() -> str:
    return str(uuidlib.uuid4())


def test_spawn_and_destroy_write_no_allocation_the_api_owns_it(
    make_host: HostFactory, image: Image
) -> None:
    host = make_host()
    rp, client = host.tracker.provider_uuid, host.client
    flavor = Flavor(name="f", vcpus=2, memory_mb=256)
    uuid = _uuid()
    held = {rp: {"MEMORY_MB": 256, "VCPU": 2}}
    client.claim(uuid, rp, held[rp], "p", "u")  # the API's scheduler
    writes = client.write_count
    guest = host.manager.spawn(guest_name(), uuid, flavor, image)
    assert guest.power_state == PowerState.RUNNING and guest.memory_file is not None
    assert client.write_count == writes and client.get_allocations(uuid)[1] == held
    with pytest.raises(GuestAlreadyExists):
        host.manager.spawn(guest_name(), uuid, flavor, image)
    assert client.get_allocations(uuid)[1] == held

    assert host.manager.destroy(uuid) is True
    assert uuid not in {g.uuid for g in host.driver.list_guests()}
    # Dropped by the API when the agent confirms the instance gone, not here.
    assert client.write_count == writes and client.get_allocations(uuid)[1] == held


def test_failed_spawn_keeps_the_apis_allocation(make_host: HostFactory, image: Image) -> None:
    host = make_host()
    rp, client = host.tracker.provider_uuid, host.client
    uuid = _uuid()
    client.claim(uuid, rp, {"MEMORY_MB": 128, "VCPU": 1}, "p", "u")
    writes = client.write_count
    with pytest.raises(InvalidGuestConfig, match=r"huge pages|hw:mem_page_size"):
        host.manager.spawn(guest_name(), uuid, HUGE_PAGES, image)
    assert client.write_count == writes
    assert client.get_allocations(uuid)[1] == {rp: {"MEMORY_MB": 128, "VCPU": 1}}
    assert uuid not in {g.uuid for g in host.driver.list_guests()}


def _show(conf_file: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    add_config_args(parser)
    host_show.register(parser.add_subparsers())
    args = parser.parse_args(["--config-file", str(conf_file), "show", "--json"])
    capsys.readouterr()
    assert args.func(args) == 0
    view: dict[str, Any] = json.loads(capsys.readouterr().out)
    return view


def test_heal_after_a_crash_converges_to_the_guests_that_exist(
    make_host: HostFactory, image: Image, state_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    host = make_host()
    rp, client = host.tracker.provider_uuid, host.client
    kept = _uuid()
    client.claim(kept, rp, {"MEMORY_MB": 128, "VCPU": 1}, DEFAULT_PROJECT_ID, DEFAULT_USER_ID)
    host.manager.spawn(guest_name(), kept, SMALL, image)
    # A crash after driver.spawn, before the claim: a guest without an allocation.
    orphan = host.driver.spawn(guest_name(), _uuid(), Flavor("m", 1, 192), image).uuid
    # A crash after driver.destroy, before the release (or after a claim, before the spawn).
    stray = _uuid()
    client.claim(stray, rp, {"MEMORY_MB": 512, "VCPU": 1}, "p", "u")
    # The scheduler's claim for an instance the agent has not spawned yet must survive heal.
    scheduled = _uuid()
    client.claim(scheduled, rp, {"MEMORY_MB": 64, "VCPU": 1}, "p", "u")

    before = {g["uuid"]: g["status"] for g in _show(state_path / "filemem.conf", capsys)["guests"]}
    assert before == {
        kept: "ok",
        orphan: "guest without allocation",
        stray: "allocation without guest",
        scheduled: "allocation without guest",
    }

    restarted = make_host()
    result = restarted.manager.heal(keep=[scheduled])
    assert (result.removed, result.claimed, result.failed, result.kept) == (
        [stray],
        [orphan],
        {},
        1,
    )
    assert client.get_provider_allocations(rp) == {
        kept: {"MEMORY_MB": 128, "VCPU": 1},
        orphan: {"MEMORY_MB": 192, "VCPU": 1},
        scheduled: {"MEMORY_MB": 64, "VCPU": 1},
    }
    writes = restarted.client.write_count
    assert restarted.manager.heal(keep=[scheduled]).removed == []
    assert restarted.client.write_count == writes
    assert restarted.manager.heal().removed == [scheduled]  # no longer wanted here

    view = _show(state_path / "filemem.conf", capsys)
    assert {g["uuid"]: g["status"] for g in view["guests"]} == {kept: "ok", orphan: "ok"}
    assert view["usages"]["MEMORY_MB"] == 320
    assert view["traits"] == ["COMPUTE_MEM_BACKING_FILE"]
    row = next(g for g in view["guests"] if g["uuid"] == orphan)
    assert row["power_state"] == "RUNNING" and row["memory_file"]["nominal_bytes"] == 192 << 20


def test_heal_reports_a_guest_whose_claim_does_not_fit(
    make_host: HostFactory, image: Image
) -> None:
    host = make_host()
    rp, client = host.tracker.provider_uuid, host.client
    orphan = host.driver.spawn(guest_name(), _uuid(), SMALL, image).uuid
    inventory = client.get_inventories(rp)[1]
    inventory["MEMORY_MB"]["reserved"] = inventory["MEMORY_MB"]["total"]  # host full
    client.set_inventories(rp, inventory)
    result = host.manager.heal()
    assert list(result.failed) == [orphan] and not result.converged
    assert "capacity" in result.failed[orphan]
    assert host.driver.get_guest(orphan).power_state == PowerState.RUNNING  # never touched
    assert host.tracker.sync().inventory_written  # the tracker puts the truth back
    assert host.manager.heal().claimed == [orphan]


# -- the agent process ----------------------------------------------------------------------


def agent_process(conf_file: Path) -> ServiceProcess:
    """`python -m filemem.cmd.compute`; its stderr goes to agent.log next to the config."""
    return ServiceProcess(
        python_module("filemem.cmd.compute", "--config-file", str(conf_file)),
        log_path=conf_file.parent / "agent.log",
        cwd=REPO,
        stop_timeout=30,
    )


def test_agent_refuses_to_start_on_a_startup_check_error(libvirtd: None, state_path: Path) -> None:
    conf_file = state_path / "filemem.conf"
    conf_file.write_text(
        conf_text(
            state_path,
            "http://127.0.0.1:9",
            file_backed_memory=2048,
            extra_default="reserved_host_memory_mb = 2048",
        )
    )
    result = subprocess.run(
        [sys.executable, "-m", "filemem.cmd.compute", "--config-file", str(conf_file)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stderr
    assert "error: [DEFAULT] reserved_host_memory_mb = 2048 is not smaller" in result.stderr
    assert "refusing to start: 1 startup check(s) failed" in result.stderr


def test_agent_keeps_guests_running_while_placement_is_down_and_recovers(
    make_driver: DriverFactory,
    image: Image,
    state_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    conf_file = state_path / "filemem.conf"
    conf_file.write_text(
        conf_text(
            state_path,
            endpoint,
            host=f"host-{state_path.name}",
            extra_default="update_resources_interval = 4\nplacement_retry_interval = 0.5",
        )
    )
    driver: LibvirtDriver = make_driver(file_backed_memory_mb=2048)
    guest = driver.spawn(guest_name(), _uuid(), SMALL, image)
    agent = agent_process(conf_file)
    agent.start()
    placement = StandalonePlacement(tmp_path_factory.mktemp("late-placement"), port)
    try:
        failures = agent.wait_log(r"Placement failed \(attempt", timeout=90, count=4)
        assert f"Placement at {endpoint} is unavailable" in failures[0]
        delays = [float(line.rsplit("retrying in ", 1)[1].split()[0]) for line in failures]
        assert delays == [0.5, 1.0, 2.0, 4.0]  # doubling, capped at update_resources_interval
        assert driver.get_guest(guest.uuid).power_state == PowerState.RUNNING
        wait_for_console(driver.console_log(guest.uuid), "FILEMEM-READY")
        down = metrics.parse((state_path / "metrics.prom").read_text())
        assert down["filemem_placement_up"] == 0 and "filemem_memory_mb_total" not in down
        assert down["filemem_backing_store_size_bytes"] > 0

        placement.start()
        agent.wait_log("Placement reachable again", timeout=30)
        rp = (state_path / "compute_node_uuid").read_text().strip()
        from tests.functional.test_tracker import client_for

        client = client_for(placement.url)
        assert client.get_provider_allocations(rp) == {guest.uuid: {"MEMORY_MB": 128, "VCPU": 1}}
        assert client.get_inventories(rp)[1]["MEMORY_MB"]["total"] == 2048
        up = metrics.parse((state_path / "metrics.prom").read_text())
        assert (
            up["filemem_placement_up"],
            up["filemem_memory_mb_total"],
            up["filemem_memory_mb_used"],
            up["filemem_memory_mb_reserved"],
        ) == (1, 2048, 128, 0)
        label = f'{{name="{guest.name}",uuid="{guest.uuid}"}}'  # sorted, as the client writes
        assert up[f"filemem_guest_memory_file_nominal_bytes{label}"] == 128 << 20
        assert up[f"filemem_guest_memory_file_allocated_bytes{label}"] == 128 << 20  # immediate
    finally:
        code = agent.stop()
        placement.stop()
    assert code == 0, agent.tail()
    agent.wait_log("filemem-compute stopped", timeout=5)
    assert driver.get_guest(guest.uuid).power_state == PowerState.RUNNING
