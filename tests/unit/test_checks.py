"""Startup checks: one failing case per rule, each naming the option at fault."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from filemem.common.findings import Finding, Severity
from filemem.common.versions import discard_supported
from filemem.compute import checks

GOOD = checks.CheckInputs(
    virt_type="kvm",
    file_backed_memory_mb=4096,
    ram_allocation_ratio=1.0,
    reserved_host_memory_mb=0,
    libvirt_version=(9, 0, 0),
    qemu_version=(7, 2, 0),
)


def errors(inputs: checks.CheckInputs) -> list[Finding]:
    return [f for f in checks.run_startup_checks(inputs) if f.severity == Severity.ERROR]


def test_good_host_passes_every_check() -> None:
    found = checks.run_startup_checks(GOOD)
    assert [f.severity for f in found] == [Severity.OK] * len(found)
    assert len(found) == 6


@pytest.mark.parametrize("virt_type", ["lxc", "parallels", "xen"])
def test_virt_type_not_qemu_or_kvm_is_refused(virt_type: str) -> None:
    [err] = errors(dataclasses.replace(GOOD, virt_type=virt_type))
    assert err.option == "[libvirt] virt_type"
    assert "[libvirt] virt_type" in err.message and virt_type in err.message


@pytest.mark.parametrize("ratio", [None, 1.5, 0.5, 16.0])
def test_ram_allocation_ratio_must_be_exactly_one(ratio: float | None) -> None:
    [err] = errors(dataclasses.replace(GOOD, ram_allocation_ratio=ratio))
    assert err.option == "[DEFAULT] ram_allocation_ratio"
    assert "[DEFAULT] ram_allocation_ratio" in err.message
    assert ("unset" if ratio is None else str(ratio)) in err.message


def test_ram_allocation_ratio_is_free_without_file_backed_memory() -> None:
    assert (
        errors(dataclasses.replace(GOOD, file_backed_memory_mb=0, ram_allocation_ratio=None)) == []
    )


@pytest.mark.parametrize("reserved", [4096, 5000])
def test_reserved_not_smaller_than_capacity_is_refused(reserved: int) -> None:
    [err] = errors(dataclasses.replace(GOOD, reserved_host_memory_mb=reserved))
    assert err.option == "[DEFAULT] reserved_host_memory_mb"
    assert "[DEFAULT] reserved_host_memory_mb" in err.message
    assert "file_backed_memory" in err.message


def test_nonzero_reserved_warns() -> None:
    found = checks.check_reserved_memory(dataclasses.replace(GOOD, reserved_host_memory_mb=512))
    assert found.severity == Severity.WARNING
    assert found.option == "[DEFAULT] reserved_host_memory_mb"
    assert "3584 MiB" in found.message


@pytest.mark.parametrize(
    ("field", "version", "what"),
    [
        ("libvirt_version", (3, 9, 0), "libvirt 3.9.0"),
        ("qemu_version", (2, 5, 1), "QEMU 2.5.1"),
    ],
)
def test_old_libvirt_or_qemu_is_refused(
    field: str,
    version: tuple[int, int, int],
    what: str,
) -> None:
    changes: dict[str, Any] = {field: version}
    [err] = errors(dataclasses.replace(GOOD, **changes))
    assert err.option == "[libvirt] file_backed_memory"
    assert what in err.message and "too old" in err.message


def test_minimum_versions_pass() -> None:
    assert (
        errors(dataclasses.replace(GOOD, libvirt_version=(4, 0, 0), qemu_version=(2, 6, 0))) == []
    )


@pytest.mark.parametrize(
    ("libvirt", "qemu", "expected"),
    [
        ((4, 3, 9), (2, 10, 0), False),
        ((4, 4, 0), (2, 9, 9), False),
        ((4, 4, 0), (2, 10, 0), True),
        ((9, 0, 0), (7, 2, 0), True),
    ],
)
def test_discard_gated_by_versions(
    libvirt: tuple[int, int, int],
    qemu: tuple[int, int, int],
    expected: bool,
) -> None:
    assert discard_supported(libvirt, qemu) is expected
    finding = checks.check_discard(
        dataclasses.replace(GOOD, libvirt_version=libvirt, qemu_version=qemu)
    )
    assert finding.severity == (Severity.OK if expected else Severity.WARNING)


@pytest.mark.parametrize(
    ("device", "severity"),
    [
        (checks.KvmDevice(exists=False), Severity.OK),
        (checks.KvmDevice(True, "kvm", 0o660, "libvirt-qemu", frozenset({"kvm"})), Severity.OK),
        (checks.KvmDevice(True, "root", 0o666, "libvirt-qemu", frozenset()), Severity.OK),
        # no udev: root:root 0600, the capabilities re-probe loop
        (
            checks.KvmDevice(True, "root", 0o600, "libvirt-qemu", frozenset({"kvm"})),
            Severity.WARNING,
        ),
        # udev's mode, but QEMU's user is not in the group
        (
            checks.KvmDevice(True, "kvm", 0o660, "libvirt-qemu", frozenset({"libvirt-qemu"})),
            Severity.WARNING,
        ),
    ],
)
def test_kvm_device_unusable_by_qemu_draws_a_warning_with_the_fix(
    device: checks.KvmDevice, severity: Severity
) -> None:
    finding = checks.check_kvm_device(device)
    assert finding.severity == severity
    if severity == Severity.WARNING:
        assert "chmod 0660 /dev/kvm" in finding.message and "re-probes" in finding.message
