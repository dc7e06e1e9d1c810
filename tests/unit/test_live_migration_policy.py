"""Live migration policy without libvirtd: the destination XML, downtime steps, the timeout, flags,
URIs, and the [libvirt] live_migration_* options and their startup check."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import libvirt
import pytest

from filemem import conf as filemem_conf
from filemem.common.findings import Severity
from filemem.common.guests import Flavor, GuestRequest, HostFacts, Image
from filemem.compute import checks
from filemem.exceptions import ConfigError
from filemem.virt import guest_config, migration
from filemem.virt.driver import MigrationTarget
from filemem.virt.libvirt.live_migration import migration_flags, migration_params, progress_of
from filemem.virt.migration import MigrationSettings
from filemem.virt.xml.domain import Domain

UUID = "3f1c2b9e-4c3a-4d2e-9a51-0c6e3f2b1a10"
INSTANCE = Path("/var/lib/filemem/instances") / UUID
FILE_CHILDREN = ["source", "access", "allocation", "discard"]


def spawned_xml(file_backed_mb: int) -> str:
    """What a spawn defines on a host with (>0) or without file-backed memory."""
    request = GuestRequest(
        name=f"instance-{UUID}",
        uuid=UUID,
        flavor=Flavor("m1", 1, 256),
        image=Image(kind="kernel", kernel=Path("/images/vmlinuz")),
        console_log=INSTANCE / "console.log",
    )
    host = HostFacts(
        virt_type="qemu",
        file_backed_memory_mb=file_backed_mb,
        discard_supported=True,
        allocation_mode="immediate",
    )
    return guest_config.build_domain(request, host).to_xml()


def backing(xml: str) -> ET.Element | None:
    return ET.fromstring(xml).find("memoryBacking")


def shape(element: ET.Element | None) -> list[tuple[str, dict[str, str]]]:
    """The children's tags and attributes (whitespace aside)."""
    assert element is not None
    return [(c.tag, dict(c.attrib)) for c in element]


# -- the destination's XML ----------------------------------------------------------------


def test_file_backed_to_file_backed_keeps_the_children_a_spawn_writes() -> None:
    out = migration.update_memory_backing_xml(spawned_xml(2048), 4096)
    element = backing(out)
    assert element is not None and [c.tag for c in element] == FILE_CHILDREN
    assert shape(element) == shape(backing(spawned_xml(2048)))
    assert guest_config.is_file_backed(Domain.from_xml(out))


def test_file_backed_to_plain_host_leaves_no_memory_backing_at_all() -> None:
    out = migration.update_memory_backing_xml(spawned_xml(2048), 0)
    assert backing(out) is None
    assert "memoryBacking" not in out  # nova would send an empty <memoryBacking/>
    assert not guest_config.is_file_backed(Domain.from_xml(out))


def test_plain_to_file_backed_adds_exactly_what_a_file_backed_spawn_has() -> None:
    out = migration.update_memory_backing_xml(spawned_xml(0), 1024)
    assert shape(backing(out)) == shape(backing(spawned_xml(1024)))
    root = ET.fromstring(out)
    tags = [c.tag for c in root]
    assert tags.index("memoryBacking") == tags.index("memory") + 1  # where libvirt puts it


def test_plain_to_plain_changes_nothing() -> None:
    xml = spawned_xml(0)
    out = migration.update_memory_backing_xml(xml, 0)
    assert backing(out) is None
    assert Domain.from_xml(out) == Domain.from_xml(xml)


def test_other_memory_backing_children_are_kept() -> None:
    xml = (
        "<domain type='qemu'><name>g</name><memory unit='KiB'>262144</memory>"
        "<memoryBacking><nosharepages/><source type='file'/><access mode='shared'/>"
        "<allocation mode='ondemand'/><locked/><discard/></memoryBacking></domain>"
    )
    out = backing(migration.update_memory_backing_xml(xml, 0))
    assert out is not None and [c.tag for c in out] == ["nosharepages", "locked"]
    again = backing(migration.update_memory_backing_xml(xml, 512))
    assert again is not None
    assert [c.tag for c in again] == ["nosharepages", "locked", *FILE_CHILDREN]
    allocation = again.find("allocation")
    assert allocation is not None and allocation.get("mode") == "immediate"


def test_memory_source_change_is_refused_with_the_reason() -> None:
    assert migration.memory_source_change(spawned_xml(2048), 1024) is None
    assert migration.memory_source_change(spawned_xml(0), 0) is None
    reason = migration.memory_source_change(spawned_xml(2048), 0)
    assert reason is not None and "file_backed_memory" in reason and "file-backed here" in reason
    assert migration.memory_source_change(spawned_xml(0), 2048) is not None


def test_instance_paths_follow_the_destination_state_path() -> None:
    dest = Path("/srv/other/instances") / UUID
    out = migration.update_instance_paths_xml(spawned_xml(2048), INSTANCE, dest)
    paths = [e.get("path") for e in ET.fromstring(out).iter() if e.get("path")]
    assert paths and all(p == str(dest / "console.log") for p in paths)
    same = migration.update_instance_paths_xml(spawned_xml(2048), INSTANCE, INSTANCE)
    assert Domain.from_xml(same) == Domain.from_xml(spawned_xml(2048))


# -- downtime steps and the completion timeout ----------------------------------------------


def test_downtime_steps_are_novas() -> None:
    # nova's own unit test figures: downtime 400, 10 steps, 30 s/GiB, 3 GiB of data.
    settings = MigrationSettings(downtime_ms=400, downtime_steps=10, downtime_delay_s=30)
    assert migration.downtime_steps(settings, 3.0) == [
        (0, 40),
        (90, 76),
        (180, 112),
        (270, 148),
        (360, 184),
        (450, 220),
        (540, 256),
        (630, 292),
        (720, 328),
        (810, 364),
        (900, 400),
    ]


def test_defaults_for_a_small_guest_count_two_gib() -> None:
    gb = migration.data_gb(256)
    assert gb == 2.0
    steps = migration.downtime_steps(MigrationSettings(), gb)
    assert steps[0] == (0, 50) and steps[-1] == (1500, 500) and len(steps) == 11
    assert migration.completion_timeout(MigrationSettings(), gb) == 1600
    assert migration.data_gb(4096, disk_bytes=2**30) == 5.0


@pytest.mark.parametrize(
    ("elapsed", "timeout", "post_copy", "expected"),
    [
        (10_000.0, 0, False, False),  # 0 = no timeout
        (99.0, 100, False, False),
        (100.0, 100, False, False),
        (100.5, 100, False, True),
        (500.0, 100, True, False),  # post-copy cannot be undone
    ],
)
def test_timeout_action_decision(
    elapsed: float, timeout: int, post_copy: bool, expected: bool
) -> None:
    assert migration.should_trigger_timeout_action(elapsed, timeout, post_copy) is expected


# -- flags, parameters, URIs --------------------------------------------------------------

BASE = (
    libvirt.VIR_MIGRATE_LIVE
    | libvirt.VIR_MIGRATE_PEER2PEER
    | libvirt.VIR_MIGRATE_PERSIST_DEST
    | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
)


def test_flags_are_novas() -> None:
    assert migration_flags(MigrationSettings(), False) == BASE
    block = migration_flags(MigrationSettings(), True)
    assert block == BASE | libvirt.VIR_MIGRATE_NON_SHARED_INC
    auto = migration_flags(MigrationSettings(permit_auto_converge=True), False)
    assert auto == BASE | libvirt.VIR_MIGRATE_AUTO_CONVERGE
    both = MigrationSettings(permit_auto_converge=True, permit_post_copy=True)
    assert migration_flags(both, False) == BASE | libvirt.VIR_MIGRATE_POSTCOPY


def test_params_carry_the_xml_the_stream_address_and_the_bandwidth() -> None:
    target = MigrationTarget(address="10.0.0.2", file_backed_memory_mb=1024)
    params = migration_params(target, "<domain/>", 0)
    assert params == {
        libvirt.VIR_MIGRATE_PARAM_URI: "tcp://10.0.0.2",
        libvirt.VIR_MIGRATE_PARAM_DEST_XML: "<domain/>",
        libvirt.VIR_MIGRATE_PARAM_PERSIST_XML: "<domain/>",
    }
    assert migration_params(target, "<domain/>", 8)[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] == 8


def test_uris() -> None:
    assert migration.destination_uri("tcp", "host-b") == "qemu+tcp://host-b/system"
    assert migration.destination_uri("tls", "fd00::2") == "qemu+tls://[fd00::2]/system"
    assert migration.migrate_uri("10.0.0.2") == "tcp://10.0.0.2"
    for bad in ("", "evil/path", "user@host", "h?x=1"):
        with pytest.raises(ValueError, match="migration address"):
            migration.destination_uri("tcp", bad)


def test_progress_from_job_stats() -> None:
    stats = {"type": 2, "memory_total": 300, "memory_processed": 100, "memory_remaining": 200}
    progress = progress_of(stats, 1.5)
    assert (progress.memory_total_bytes, progress.memory_remaining_bytes) == (300, 200)
    assert progress_of({"type": 2}, 0.5).memory_processed_bytes == 0  # before QEMU reports


# -- options and their check --------------------------------------------------------------


def test_option_defaults_are_novas() -> None:
    conf = filemem_conf.load(config_files=[])
    lm = conf.libvirt
    assert lm.live_migration_scheme == "tcp" and lm.live_migration_inbound_addr is None
    assert (lm.live_migration_bandwidth, lm.live_migration_downtime) == (0, 500)
    assert (lm.live_migration_downtime_steps, lm.live_migration_downtime_delay) == (10, 75)
    assert lm.live_migration_completion_timeout == 800
    assert lm.live_migration_timeout_action == "abort"
    assert not lm.live_migration_permit_post_copy and not lm.live_migration_permit_auto_converge


@pytest.mark.parametrize(
    ("line", "option"),
    [
        ("live_migration_downtime = 50", "live_migration_downtime"),
        ("live_migration_downtime_steps = 2", "live_migration_downtime_steps"),
        ("live_migration_downtime_delay = 1", "live_migration_downtime_delay"),
        ("live_migration_completion_timeout = -1", "live_migration_completion_timeout"),
        ("live_migration_bandwidth = -5", "live_migration_bandwidth"),
        ("live_migration_timeout_action = retry", "live_migration_timeout_action"),
        ("live_migration_scheme = http", "live_migration_scheme"),
        ("live_migration_permit_post_copy = maybe", "live_migration_permit_post_copy"),
        ("live_migration_inbound_addr = not an address!", "live_migration_inbound_addr"),
    ],
)
def test_invalid_options_refuse_to_start_naming_the_option(
    tmp_path: Path, line: str, option: str
) -> None:
    config = tmp_path / "filemem.conf"
    config.write_text(f"[libvirt]\n{line}\n")
    with pytest.raises(ConfigError) as refused:
        filemem_conf.load(config_files=[str(config)])
    assert option in str(refused.value)


def lm_inputs(**changes: object) -> checks.LiveMigrationInputs:
    values: dict[str, object] = {
        "inbound_addr": None,
        "host": "compute-1",
        "permit_post_copy": False,
        "permit_auto_converge": False,
    }
    return checks.LiveMigrationInputs(**{**values, **changes})  # type: ignore[arg-type]


def test_migration_address_check() -> None:
    [ok] = checks.check_live_migration(lm_inputs())
    assert ok.severity == Severity.OK and "compute-1" in ok.message
    [err] = checks.check_live_migration(lm_inputs(inbound_addr="0.0.0.0"))
    assert err.severity == Severity.ERROR
    assert err.option == "[libvirt] live_migration_inbound_addr"
    assert "[libvirt] live_migration_inbound_addr" in err.message


def test_post_copy_and_auto_converge_together_warn() -> None:
    found = checks.check_live_migration(lm_inputs(permit_post_copy=True, permit_auto_converge=True))
    assert [f.severity for f in found] == [Severity.OK, Severity.WARNING]
    assert "post-copy is used" in found[1].message
