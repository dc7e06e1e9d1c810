"""The live migration's pure decisions: instance state, destination prechecks, forcing."""

from __future__ import annotations

from filemem.conductor import live_migration_checks as checks

CAPABLE = {"file_backed_memory": True, "live_migration": True}


def guest(**kw: object) -> checks.GuestFacts:
    values: dict[str, object] = {
        "uuid": "u1",
        "vm_state": "active",
        "task_state": None,
        "memory_mb": 256,
    }
    values.update(kw)
    return checks.GuestFacts(**values)  # type: ignore[arg-type]


def host(name: str, **kw: object) -> checks.HostFacts:
    values: dict[str, object] = {
        "host": name,
        "up": True,
        "disabled": False,
        "file_backed_memory_mb": 4096,
        "capabilities": CAPABLE,
        "store_free_mb": 4096,
    }
    values.update(kw)
    return checks.HostFacts(**values)  # type: ignore[arg-type]


def test_instance_states() -> None:
    assert checks.instance_refusal(guest(), False) is None
    assert checks.instance_refusal(guest(vm_state="paused"), False) is None
    stopped = checks.instance_refusal(guest(vm_state="stopped"), True)
    assert stopped is not None and "vm_state stopped" in stopped
    busy = checks.instance_refusal(guest(task_state="rebooting"), True)
    assert busy is not None and "task_state rebooting" in busy
    moving = checks.instance_refusal(guest(migration_in_progress=True), True)
    assert moving is not None and "another migration" in moving


def test_lock_binds_non_admins_only() -> None:
    assert checks.instance_refusal(guest(locked=True), False) == "Instance u1 is locked"
    assert checks.instance_refusal(guest(locked=True), True) is None


def test_destination_ok() -> None:
    assert checks.destination_refusal(guest(), host("a"), host("b")) is None


def test_destination_same_down_disabled() -> None:
    same = checks.destination_refusal(guest(), host("a"), host("a"))
    assert same == "Unable to migrate instance (u1) to current host (a)."
    down = checks.destination_refusal(guest(), host("a"), host("b", up=False))
    assert down is not None and "unavailable" in down
    disabled = checks.destination_refusal(guest(), host("a"), host("b", disabled=True))
    assert disabled is not None and "disabled" in disabled


def test_store_free_is_capacity_truth() -> None:
    assert checks.destination_refusal(guest(), host("a"), host("b", store_free_mb=256)) is None
    small = checks.destination_refusal(guest(), host("a"), host("b", store_free_mb=255))
    assert small is not None and "255 MiB free" in small and "256 MiB" in small
    unknown = checks.destination_refusal(guest(), host("a"), host("b", store_free_mb=None))
    assert unknown is not None and "store_free_mb" in unknown


def test_file_backed_destination_needs_capable_source() -> None:
    for caps in (None, {"file_backed_memory": False, "live_migration": True}):
        reason = checks.destination_refusal(guest(), host("a", capabilities=caps), host("b"))
        assert reason == (
            "cannot live-migrate u1 from a (no file-backed memory support) to file-backed host b"
        )
    # Between hosts without file-backed memory the capability does not matter.
    old = host("a", file_backed_memory_mb=0, capabilities=None)
    plain = host("b", file_backed_memory_mb=0)
    assert checks.destination_refusal(guest(), old, plain) is None


def test_memory_backing_never_changes_during_a_move() -> None:
    plain = host("b", file_backed_memory_mb=0)
    to_ram = checks.destination_refusal(guest(), host("a"), plain)
    assert to_ram == (
        "cannot live-migrate u1 from file-backed host a to RAM-backed host b: libvirt cannot "
        "change a running guest's memory backing; move it to a host that backs memory the "
        "same way"
    )
    to_file = checks.destination_refusal(guest(), host("c", file_backed_memory_mb=0), host("d"))
    assert to_file is not None and "from RAM-backed host c to file-backed host d" in to_file


def test_huge_pages_never_to_file_backed() -> None:
    reason = checks.destination_refusal(guest(wants_huge_pages=True), host("a"), host("b"))
    assert reason is not None and "huge pages" in reason
    ram_a, ram_b = host("a", file_backed_memory_mb=0), host("b", file_backed_memory_mb=0)
    assert checks.destination_refusal(guest(wants_huge_pages=True), ram_a, ram_b) is None


def test_force_by_version() -> None:
    assert checks.requested_force(False, "h", None) is True
    assert checks.requested_force(True, "h", None) is False
    assert checks.requested_force(True, "h", False) is False
    assert checks.requested_force(True, "h", True) is True
    assert checks.requested_force(True, None, True) is False


def test_block_migration_auto() -> None:
    assert checks.block_migration_wanted("auto") is True
    assert checks.block_migration_wanted(False) is False
