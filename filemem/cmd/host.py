"""`filemem host ...`: startup checks and backing-store report for this host."""

from __future__ import annotations

import argparse

from filemem.cmd import host_show
from filemem.cmd.common import load_conf, mib, print_json
from filemem.common.findings import Severity
from filemem.compute.host_check import HostReport, check_host

_MARK = {Severity.OK: "ok", Severity.WARNING: "WARNING", Severity.ERROR: "ERROR"}


def register(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    host = sub.add_parser("host", help="this compute host")
    host_sub = host.add_subparsers(dest="host_command", required=True)
    check = host_sub.add_parser(
        "check",
        help="run every startup check and inspect the backing store",
        description="Runs the checks filemem-compute runs before it starts (virt_type, "
        "ram_allocation_ratio, reserved_host_memory_mb, libvirt/QEMU versions, discard) and "
        "inspects libvirt's memory_backing_dir: device, filesystem, size, free room, whether "
        "QEMU can write there. Exits 1 when any check fails, 0 otherwise (warnings included).",
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(func=cmd_check)
    host_show.register(host_sub)
    return host_sub


def cmd_check(args: argparse.Namespace) -> int:
    report = check_host(load_conf(args))
    if args.json:
        print_json(report.as_dict())
    else:
        print_report(report)
    return 1 if report.severity == Severity.ERROR else 0


def print_report(report: HostReport) -> None:
    print(f"host {report.host}  ({report.connection_uri})")
    if report.libvirt_version:
        print(f"  libvirt {report.libvirt_version}, QEMU {report.qemu_version}")
    facts = report.store
    if facts is not None:
        print(f"  memory_backing_dir {facts.path}{'' if facts.exists else ' (not created yet)'}")
        print(
            f"    device {facts.device}, filesystem {facts.fs_type}, mounted at "
            f"{facts.mount_point}, size {mib(facts.size_bytes)} MiB, free "
            f"{mib(facts.free_bytes)} MiB"
        )
    for finding in report.findings:
        print(f"  {_MARK[finding.severity]:<7} {finding.message}")
    errors = sum(1 for f in report.findings if f.severity == Severity.ERROR)
    warnings = sum(1 for f in report.findings if f.severity == Severity.WARNING)
    verdict = "this host cannot run filemem-compute" if errors else "this host is ready"
    print(f"{errors} error(s), {warnings} warning(s): {verdict}")
