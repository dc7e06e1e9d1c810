"""The resource tracker against real Placement (standalone, over HTTP) and a real tmpfs store."""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from filemem.common.resources import DISK_GB, GIB, MEMORY_MB, VCPU
from filemem.compute.host_check import driver_settings
from filemem.compute.tracker import PROVIDER_UUID_FILE, ResourceTracker, provider_uuid
from filemem.placement.client import PlacementClient
from filemem.placement.http import HttpTransport
from filemem.virt.libvirt.driver import LibvirtDriver
from tests.functional.placement_fixtures import StandalonePlacement, conf_text, load_conf

TRAIT = "COMPUTE_MEM_BACKING_FILE"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def placement(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with StandalonePlacement(tmp_path_factory.mktemp("placement")) as url:
        yield url


def client_for(url: str) -> PlacementClient:
    return PlacementClient(HttpTransport.with_token(url, "admin"))


def make_tracker(
    placement: str,
    state_path: Path,
    *,
    store_dir: Path | None = None,
    file_backed_memory: int = 2048,
    extra_default: str = "",
    extra_libvirt: str = "",
) -> ResourceTracker:
    """A fresh tracker, as a (re)started agent builds it: new config, new client."""
    text = conf_text(
        state_path,
        placement,
        host=f"host-{state_path.name}",
        file_backed_memory=file_backed_memory,
        extra_default=extra_default,
        extra_libvirt=extra_libvirt,
    )
    conf = load_conf(state_path / "filemem.conf", text)
    return ResourceTracker(
        conf, LibvirtDriver(driver_settings(conf)), client_for(placement), store_dir=store_dir
    )


def test_inventory_and_trait_equal_the_config_after_start(placement: str, state_path: Path) -> None:
    tracker = make_tracker(
        placement,
        state_path,
        file_backed_memory=3072,
        extra_default="cpu_allocation_ratio = 8.0\nreserved_host_disk_mb = 100",
    )
    result = tracker.sync()
    assert result.writes == 3  # POST provider, PUT inventories, PUT traits
    client = client_for(placement)
    provider = client.get_resource_provider(tracker.provider_uuid)
    assert provider is not None and provider.name == f"host-{state_path.name}"
    _, inventories = client.get_inventories(tracker.provider_uuid)
    assert inventories[MEMORY_MB] == {
        "total": 3072,
        "reserved": 0,
        "min_unit": 1,
        "max_unit": 3072,
        "step_size": 1,
        "allocation_ratio": 1.0,
    }
    cpus = os.cpu_count()
    assert inventories[VCPU] == {
        "total": cpus,
        "reserved": 0,
        "min_unit": 1,
        "max_unit": cpus,
        "step_size": 1,
        "allocation_ratio": 8.0,
    }
    vfs = os.statvfs(state_path)
    assert inventories[DISK_GB]["total"] == vfs.f_blocks * vfs.f_frsize // GIB
    assert inventories[DISK_GB]["reserved"] == 1
    assert client.get_traits(tracker.provider_uuid)[1] == {TRAIT}


def test_no_write_when_nothing_changed_also_after_a_restart(
    placement: str, state_path: Path
) -> None:
    first = make_tracker(placement, state_path).sync()
    assert first.writes == 3
    tracker = make_tracker(placement, state_path)  # restart: same state_path and config
    timings = []
    for _ in range(5):
        again = tracker.sync()
        assert (again.writes, again.requests) == (0, 3)  # GET provider, inventories, traits
        assert not again.inventory_written and not again.traits_written
        timings.append(again.seconds)
    assert tracker.client.write_count == 0
    changed = make_tracker(placement, state_path, file_backed_memory=1024).sync()
    assert (changed.writes, changed.requests) == (1, 4)  # + PUT inventories
    print(
        f"\nno-change sync: 3 GETs, 0 writes, {min(timings) * 1000:.1f} ms; change sync: "
        f"{changed.requests} requests, 1 write, {changed.seconds * 1000:.1f} ms (HTTP)"
    )


def test_changed_file_backed_memory_is_picked_up_on_restart(
    placement: str, state_path: Path
) -> None:
    before = make_tracker(placement, state_path, file_backed_memory=2048)
    before.sync()
    uuid_file = (state_path / PROVIDER_UUID_FILE).read_text()
    after = make_tracker(placement, state_path, file_backed_memory=4096)
    assert after.provider_uuid == before.provider_uuid == provider_uuid(state_path)
    result = after.sync()
    assert result.inventory_written and not result.traits_written
    assert (state_path / PROVIDER_UUID_FILE).read_text() == uuid_file
    inventories = client_for(placement).get_inventories(after.provider_uuid)[1]
    assert (inventories[MEMORY_MB]["total"], inventories[MEMORY_MB]["max_unit"]) == (4096, 4096)


def test_turning_file_backed_memory_off_reports_ram_and_keeps_foreign_traits(
    placement: str, state_path: Path
) -> None:
    tracker = make_tracker(placement, state_path)
    tracker.sync()
    client = client_for(placement)
    client.set_traits(tracker.provider_uuid, [TRAIT, "HW_CPU_X86_AVX2"])  # an operator's trait
    assert make_tracker(placement, state_path).sync().writes == 0  # ours is already right

    result = make_tracker(placement, state_path, file_backed_memory=0).sync()
    assert result.traits == {"HW_CPU_X86_AVX2"}
    assert client.get_traits(tracker.provider_uuid)[1] == {"HW_CPU_X86_AVX2"}
    memory = client.get_inventories(tracker.provider_uuid)[1][MEMORY_MB]
    ram_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // MIB
    assert (memory["total"], memory["allocation_ratio"]) == (ram_mb, 1.0)


def test_provider_uuid_is_created_once_atomically(state_path: Path) -> None:
    created = provider_uuid(state_path)
    assert provider_uuid(state_path) == created
    assert [p.name for p in state_path.iterdir()] == [PROVIDER_UUID_FILE]


# -- capacity truth on a real, small filesystem ---------------------------------------------


@pytest.fixture
def tmpfs(state_path: Path) -> Iterator[Path]:
    store = state_path / "store"
    store.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200m", "tmpfs", str(store)], check=True)
    try:
        yield store
    finally:
        subprocess.run(["umount", str(store)], check=True)


def _write(path: Path, mib: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(b"\x01" * (mib * MIB))


def _memory(placement: str, rp_uuid: str) -> dict[str, int]:
    return dict(client_for(placement).get_inventories(rp_uuid)[1][MEMORY_MB])


def test_store_smaller_than_file_backed_memory_reserves_the_shortfall_then_restores(
    placement: str, state_path: Path, tmpfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = make_tracker(
        placement,
        state_path,
        store_dir=tmpfs,
        file_backed_memory=1024,
        extra_libvirt="backing_store_headroom_mb = 16",
    )
    caplog.set_level(logging.INFO, logger="filemem.compute.tracker")
    result = tracker.sync()
    # 200 MiB tmpfs - 16 MiB headroom = 184 MiB for guests; total stays the configured 1024.
    assert _memory(placement, tracker.provider_uuid)["total"] == 1024
    assert _memory(placement, tracker.provider_uuid)["reserved"] == 1024 - 184
    assert result.inventory.capacity_reduced and result.inventory.store_capacity_mb == 184
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "can hold only 184 MiB of guest memory (200 MiB free" in warnings[0]
    assert "[libvirt] file_backed_memory = 1024 MiB" in warnings[0]

    # A guest's memory file (libvirt's <id>-<name>/ layout) takes free room but comes back when
    # it stops, so it does not reduce capacity; any other writer's file does.
    _write(tmpfs / "3-guest" / "pc.ram", 100)
    assert tracker.sync().writes == 0
    _write(tmpfs / "other-writer.bin", 50)
    assert tracker.sync().writes == 1
    assert _memory(placement, tracker.provider_uuid)["reserved"] == 1024 - 134

    # The guest stops (libvirt deletes its file) and another writer takes nearly all: less
    # room than the headroom marks the host full, reserved == total.
    (tmpfs / "3-guest" / "pc.ram").unlink()
    _write(tmpfs / "other-writer.bin", 195)
    tracker.sync()
    assert _memory(placement, tracker.provider_uuid)["reserved"] == 1024

    caplog.clear()
    subprocess.run(["mount", "-o", "remount,size=2g", str(tmpfs)], check=True)
    restored = tracker.sync()
    assert restored.writes == 1 and not restored.inventory.capacity_reduced
    assert _memory(placement, tracker.provider_uuid)["reserved"] == 0
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert any("capacity restored" in m for m in infos), infos
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_capacity_reduced_warning_is_not_repeated_while_unchanged(
    placement: str, state_path: Path, tmpfs: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = make_tracker(placement, state_path, store_dir=tmpfs, file_backed_memory=1024)
    caplog.set_level(logging.WARNING, logger="filemem.compute.tracker")
    start = time.monotonic()
    for _ in range(3):
        tracker.sync()
    assert time.monotonic() - start < 30
    assert len([r for r in caplog.records if "capacity reduced" in r.getMessage()]) == 1
