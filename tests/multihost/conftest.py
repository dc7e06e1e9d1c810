"""Fixtures for multi-host tests: simulated hosts in namespaces, each with its own libvirtd."""

from __future__ import annotations

import shutil
import subprocess
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.cloud import cloud as cloudlib
from devtools.cloud import hosts
from devtools.cloud.spec import CloudSpec, HostSpec, build_spec

ROOT = Path("/var/lib/filemem-cloud")
REPO = Path(__file__).resolve().parents[2]


def require_namespaces() -> None:
    """`ip netns` and root are prerequisites: missing, the test fails loudly (never skips)."""
    assert shutil.which("ip") and shutil.which("nsenter") and shutil.which("unshare"), (
        "multi-host tests need iproute2 (ip) and util-linux (nsenter, unshare)"
    )
    result = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"`ip netns` is unavailable: {result.stderr}"
    assert shutil.which("libvirtd") and shutil.which("virtlogd"), "libvirtd/virtlogd missing"


def cloud_name() -> str:
    return "t" + uuidlib.uuid4().hex[:7]


def hosts_up(count: int, overrides: dict[int, HostSpec] | None = None) -> CloudSpec:
    """Bridge + `count` hosts with private libvirtds (no control plane)."""
    require_namespaces()
    subprocess.run([str(REPO / "scripts" / "start-libvirt")], check=True, capture_output=True)
    with hosts.root_lock(ROOT):
        spec = build_spec(cloud_name(), count, hosts.free_subnet(ROOT), overrides, ROOT)
        spec.base.mkdir(mode=0o755, parents=True)
        hosts.save(spec)
    try:
        hosts.up_hosts(spec, print)
    except BaseException:
        hosts_down(spec)
        raise
    return spec


def hosts_down(spec: CloudSpec) -> None:
    hosts.down_hosts(spec, print)
    shutil.rmtree(spec.base, ignore_errors=True)


@pytest.fixture(scope="module")
def two_hosts() -> Iterator[CloudSpec]:
    spec = hosts_up(2)
    yield spec
    hosts_down(spec)


def require_postgres() -> None:
    from devtools.postgres import PG_BIN

    assert (PG_BIN / "initdb").is_file(), f"PostgreSQL is missing ({PG_BIN}/initdb)"


def cloud_up(count: int, overrides: dict[int, HostSpec] | None = None) -> cloudlib.Cloud:
    """A whole cloud (hosts, PostgreSQL, Placement, two APIs, agents) under a fresh name."""
    require_namespaces()
    require_postgres()
    subprocess.run([str(REPO / "scripts" / "start-libvirt")], check=True, capture_output=True)
    return cloudlib.up(cloud_name(), count, overrides, root=ROOT)
