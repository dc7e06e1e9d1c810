"""Startup checks: pure functions over configuration and host facts, one finding per rule."""

from __future__ import annotations

from dataclasses import dataclass

from filemem.common import findings
from filemem.common.findings import Finding
from filemem.common.versions import (
    MIN_LIBVIRT_VERSION,
    MIN_QEMU_VERSION,
    Version,
    discard_supported,
    fmt_version,
)

SUPPORTED_VIRT_TYPES = ("kvm", "qemu")


@dataclass(frozen=True)
class CheckInputs:
    """The configuration values and live host facts the startup checks look at."""

    virt_type: str
    file_backed_memory_mb: int
    ram_allocation_ratio: float | None
    reserved_host_memory_mb: int
    libvirt_version: Version
    qemu_version: Version


def check_virt_type(inputs: CheckInputs) -> Finding:
    option = "[libvirt] virt_type"
    if inputs.virt_type in SUPPORTED_VIRT_TYPES:
        return findings.ok("virt_type", f"virt_type is {inputs.virt_type}", option)
    why = (
        "file-backed memory needs a QEMU domain"
        if inputs.file_backed_memory_mb
        else ("filemem drives QEMU guests only")
    )
    return findings.error(
        "virt_type",
        f"{option} = {inputs.virt_type} is not supported: {why}; set it to kvm "
        "(or qemu where KVM is unusable)",
        option,
    )


def check_ram_allocation_ratio(inputs: CheckInputs) -> Finding:
    option = "[DEFAULT] ram_allocation_ratio"
    if not inputs.file_backed_memory_mb:
        return findings.ok("ram_allocation_ratio", "file-backed memory is off", option)
    if inputs.ram_allocation_ratio == 1.0:
        return findings.ok("ram_allocation_ratio", "ram_allocation_ratio is 1.0", option)
    shown = "unset" if inputs.ram_allocation_ratio is None else str(inputs.ram_allocation_ratio)
    return findings.error(
        "ram_allocation_ratio",
        f"{option} is {shown}, but a file-backed host ([libvirt] file_backed_memory = "
        f"{inputs.file_backed_memory_mb}) must set it to exactly 1.0: the backing store "
        "cannot be over-committed",
        option,
    )


def check_reserved_memory(inputs: CheckInputs) -> Finding:
    option = "[DEFAULT] reserved_host_memory_mb"
    reserved, capacity = inputs.reserved_host_memory_mb, inputs.file_backed_memory_mb
    if not capacity:
        return findings.ok("reserved_host_memory_mb", f"{reserved} MiB reserved", option)
    if reserved >= capacity:
        return findings.error(
            "reserved_host_memory_mb",
            f"{option} = {reserved} is not smaller than [libvirt] file_backed_memory = "
            f"{capacity}: no memory would be left for guests",
            option,
        )
    if reserved:
        return findings.warning(
            "reserved_host_memory_mb",
            f"{option} = {reserved} is taken out of file_backed_memory ({capacity} MiB), "
            f"leaving {capacity - reserved} MiB for guests; on a file-backed host host RAM "
            "is not what guests use, so 0 is usual",
            option,
        )
    return findings.ok("reserved_host_memory_mb", "nothing reserved", option)


def check_versions(inputs: CheckInputs) -> list[Finding]:
    result = []
    for what, have, need in (
        ("libvirt", inputs.libvirt_version, MIN_LIBVIRT_VERSION),
        ("QEMU", inputs.qemu_version, MIN_QEMU_VERSION),
    ):
        code = f"{what.lower()}_version"
        if not inputs.file_backed_memory_mb or have >= need:
            result.append(findings.ok(code, f"{what} {fmt_version(have)}"))
        else:
            result.append(
                findings.error(
                    code,
                    f"{what} {fmt_version(have)} is too old for [libvirt] file_backed_memory: "
                    f"{fmt_version(need)} or newer is needed",
                    "[libvirt] file_backed_memory",
                )
            )
    return result


def check_discard(inputs: CheckInputs) -> Finding:
    if not inputs.file_backed_memory_mb:
        return findings.ok("discard", "file-backed memory is off")
    if discard_supported(inputs.libvirt_version, inputs.qemu_version):
        return findings.ok(
            "discard", "memory is discarded at guest stop (libvirt >= 4.4.0, QEMU >= 2.10.0)"
        )
    return findings.warning(
        "discard",
        f"libvirt {fmt_version(inputs.libvirt_version)} / QEMU "
        f"{fmt_version(inputs.qemu_version)} cannot discard guest memory at stop (needs "
        "libvirt >= 4.4.0 and QEMU >= 2.10.0): stopping a guest writes its memory back to the "
        "store",
    )


@dataclass(frozen=True)
class KvmDevice:
    """/dev/kvm as libvirt sees it: who may open it, and whether QEMU's user is among them."""

    exists: bool
    group: str = ""
    mode: int = 0
    qemu_user: str = "libvirt-qemu"
    qemu_user_groups: frozenset[str] = frozenset()


def check_kvm_device(device: KvmDevice) -> Finding:
    """udev makes /dev/kvm root:kvm 0660. Without udev it stays root:root 0600: libvirtd then
    finds it unusable by QEMU's user, throws its capabilities cache away and probes QEMU again
    every few seconds, and every guest definition waits on that loop (even TCG guests)."""
    if not device.exists:
        return findings.ok("kvm_device", "/dev/kvm does not exist: guests can only use TCG")
    readable = device.mode & 0o060 == 0o060 and device.group in device.qemu_user_groups
    if readable or device.mode & 0o006 == 0o006:
        return findings.ok("kvm_device", f"/dev/kvm is usable by {device.qemu_user}")
    return findings.warning(
        "kvm_device",
        f"/dev/kvm is group {device.group} mode {device.mode & 0o777:04o}, which "
        f"{device.qemu_user} cannot open: libvirtd re-probes QEMU every few seconds and guest "
        "starts wait on it. Do what Debian's udev rule does: chgrp kvm /dev/kvm; chmod 0660 "
        f"/dev/kvm; usermod -aG kvm {device.qemu_user}; then restart libvirtd",
    )


@dataclass(frozen=True)
class LiveMigrationInputs:
    """[libvirt] live_migration_* values oslo.config's types and ranges cannot judge alone."""

    inbound_addr: str | None
    host: str
    permit_post_copy: bool
    permit_auto_converge: bool


# Addresses that name no host in particular: another host cannot migrate to them.
_UNREACHABLE_ADDRESSES = frozenset({"0.0.0.0", "::", "[::]"})  # noqa: S104


def check_live_migration(inputs: LiveMigrationInputs) -> list[Finding]:
    """The migration address other hosts are given must name this host; post-copy and
    auto-converge are exclusive (nova: post-copy wins, with a warning)."""
    option = "[libvirt] live_migration_inbound_addr"
    address = inputs.inbound_addr or inputs.host
    where = option if inputs.inbound_addr else "[DEFAULT] host"
    if not address or address in _UNREACHABLE_ADDRESSES:
        result = [
            findings.error(
                "live_migration_address",
                f"{where} = {address!r} is no address other hosts can reach this host on for "
                f"live migration; set {option} to this host's address on the migration network",
                option,
            )
        ]
    else:
        result = [
            findings.ok("live_migration_address", f"live migration address {address}", option)
        ]
    if inputs.permit_post_copy and inputs.permit_auto_converge:
        result.append(
            findings.warning(
                "live_migration_post_copy",
                "[libvirt] live_migration_permit_post_copy and "
                "live_migration_permit_auto_converge are both set: post-copy is used and "
                "auto-converge ignored",
                "[libvirt] live_migration_permit_auto_converge",
            )
        )
    return result


def run_startup_checks(inputs: CheckInputs) -> list[Finding]:
    """Every rule, in the order an operator would fix them."""
    return [
        check_virt_type(inputs),
        check_ram_allocation_ratio(inputs),
        check_reserved_memory(inputs),
        *check_versions(inputs),
        check_discard(inputs),
    ]
