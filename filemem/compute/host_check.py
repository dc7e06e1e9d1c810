"""Gathers live host facts (libvirt, QEMU, backing store) and runs every startup check on them."""

from __future__ import annotations

import grp
import pwd
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oslo_config import cfg

from filemem.backing import capacity, store
from filemem.common import findings
from filemem.common.findings import Finding, Severity
from filemem.common.versions import fmt_version
from filemem.compute import checks
from filemem.compute.network.setup import check_network
from filemem.exceptions import FilememError
from filemem.virt.driver import HypervisorDriver
from filemem.virt.libvirt import partition
from filemem.virt.libvirt.driver import DriverSettings, LibvirtDriver
from filemem.virt.migration import MigrationSettings


@dataclass
class HostReport:
    host: str
    connection_uri: str
    libvirt_version: str | None = None
    qemu_version: str | None = None
    store: store.StoreFacts | None = None
    findings: list[Finding] = field(default_factory=list)

    @property
    def severity(self) -> Severity:
        return findings.worst(self.findings)

    def as_dict(self) -> dict[str, Any]:
        return {
            "host": self.host,
            "connection_uri": self.connection_uri,
            "libvirt_version": self.libvirt_version,
            "qemu_version": self.qemu_version,
            "store": self.store.as_dict() if self.store else None,
            "result": self.severity.name.lower(),
            "findings": [f.as_dict() for f in self.findings],
        }


def driver_settings(conf: cfg.ConfigOpts) -> DriverSettings:
    partition.check_memory_limit(conf.libvirt.guest_partition, conf.libvirt.guest_memory_limit_mb)
    return DriverSettings(
        connection_uri=conf.libvirt.connection_uri,
        virt_type="kvm" if conf.libvirt.virt_type == "kvm" else "qemu",
        file_backed_memory_mb=conf.libvirt.file_backed_memory,
        allocation_mode=conf.libvirt.file_backed_memory_allocation,
        headroom_mb=conf.libvirt.backing_store_headroom_mb,
        state_path=Path(conf.state_path),
        qemu_conf_path=Path(conf.libvirt.qemu_conf_path),
        shutdown_timeout=float(conf.shutdown_timeout),
        guest_partition=conf.libvirt.guest_partition,
        guest_memory_limit_mb=conf.libvirt.guest_memory_limit_mb,
        migration=migration_settings(conf),
    )


def migration_settings(conf: cfg.ConfigOpts) -> MigrationSettings:
    """[libvirt] live_migration_* as the driver's settings."""
    lm = conf.libvirt
    return MigrationSettings(
        scheme=lm.live_migration_scheme,
        bandwidth_mib=lm.live_migration_bandwidth,
        downtime_ms=lm.live_migration_downtime,
        downtime_steps=lm.live_migration_downtime_steps,
        downtime_delay_s=lm.live_migration_downtime_delay,
        completion_timeout_s=lm.live_migration_completion_timeout,
        timeout_action=lm.live_migration_timeout_action,
        permit_post_copy=lm.live_migration_permit_post_copy,
        permit_auto_converge=lm.live_migration_permit_auto_converge,
    )


def check_host(conf: cfg.ConfigOpts, driver: HypervisorDriver | None = None) -> HostReport:
    """Every startup check plus the backing-store report; never raises for a sick host."""
    driver = driver or LibvirtDriver(driver_settings(conf))
    report = HostReport(host=conf.host, connection_uri=driver.connection_uri)
    try:
        libvirt_version, qemu_version = driver.versions()
    except FilememError as exc:
        report.findings.append(
            findings.error(
                "libvirt_unreachable",
                f"cannot read libvirt/QEMU versions: {exc}",
                "[libvirt] connection_uri",
            )
        )
        return report
    report.libvirt_version = fmt_version(libvirt_version)
    report.qemu_version = fmt_version(qemu_version)
    report.findings.extend(
        checks.run_startup_checks(
            checks.CheckInputs(
                virt_type=conf.libvirt.virt_type,
                file_backed_memory_mb=conf.libvirt.file_backed_memory,
                ram_allocation_ratio=conf.ram_allocation_ratio,
                reserved_host_memory_mb=conf.reserved_host_memory_mb,
                libvirt_version=libvirt_version,
                qemu_version=qemu_version,
            )
        )
    )
    report.findings.extend(checks.check_live_migration(live_migration_inputs(conf)))
    report.findings.append(
        checks.check_kvm_device(kvm_device(store.qemu_user(driver.qemu_conf_text())))
    )
    report.findings.extend(check_network(conf))
    if conf.libvirt.file_backed_memory:
        conf_text = driver.qemu_conf_text()
        facts = store.inspect_store(driver.memory_backing_dir(), store.qemu_user(conf_text))
        report.store = facts
        guest_files = list(store.all_memory_files(facts.path).values())
        report.findings.extend(
            capacity.store_findings(
                conf.libvirt.file_backed_memory,
                conf.reserved_host_memory_mb,
                facts,
                guest_files,
            )
        )
    return report


def live_migration_inputs(conf: cfg.ConfigOpts) -> checks.LiveMigrationInputs:
    return checks.LiveMigrationInputs(
        inbound_addr=conf.libvirt.live_migration_inbound_addr,
        host=conf.host,
        permit_post_copy=conf.libvirt.live_migration_permit_post_copy,
        permit_auto_converge=conf.libvirt.live_migration_permit_auto_converge,
    )


def kvm_device(qemu_user: str, path: Path = Path("/dev/kvm")) -> checks.KvmDevice:
    """The facts check_kvm_device judges, read from the device node and the group database."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return checks.KvmDevice(exists=False, qemu_user=qemu_user)
    return checks.KvmDevice(
        exists=True,
        group=_group_name(st.st_gid),
        mode=st.st_mode & 0o7777,
        qemu_user=qemu_user,
        qemu_user_groups=_groups_of(qemu_user),
    )


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def _groups_of(user: str) -> frozenset[str]:
    try:
        primary = pwd.getpwnam(user).pw_gid
    except KeyError:
        return frozenset()
    names = {g.gr_name for g in grp.getgrall() if user in g.gr_mem}
    return frozenset(names | {_group_name(primary)})
