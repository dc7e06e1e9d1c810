"""What a simulated cloud is made of (pure): names, addresses, per-host settings, config text."""

from __future__ import annotations

import ipaddress
import re
import uuid as uuidlib
from dataclasses import dataclass
from pathlib import Path

from filemem.exceptions import InvalidInput

DEFAULT_ROOT = Path("/var/lib/filemem-cloud")
# 10.213.<k>.0/24, one /24 per cloud: k picks a free one (see pick_subnet_index).
SUBNET_PREFIX = (10, 213)
FIRST_HOST_OCTET = 10
NAME_PATTERN = re.compile(r"\A[a-z][a-z0-9]{0,7}\Z")
MAX_HOSTS = 16
# Where every host sees its private memory store: libvirt's default memory_backing_dir.
MEMORY_BACKING_DIR = Path("/var/lib/libvirt/qemu/ram")
# The shared image catalogue: same path everywhere, bind-mounted read-only into every host.
IMAGE_DIR = Path("/var/lib/filemem/images")
# libvirt directories each host gets its own copy of (bind-mounted over the system ones).
PRIVATE_LIBVIRT_DIRS = {
    "etc": Path("/etc/libvirt"),
    "run": Path("/run/libvirt"),
    "lib": Path("/var/lib/libvirt"),
    "cache": Path("/var/cache/libvirt"),
    "log": Path("/var/log/libvirt"),
}
# The agent's room for the filesystem's own needs on the store, out of file_backed_memory.
STORE_HEADROOM_MB = 64


def check_name(name: str) -> str:
    """A cloud name: it becomes part of interface and namespace names (15-character limit)."""
    if not NAME_PATTERN.match(name):
        raise InvalidInput(
            f"cloud name {name!r}: 1-8 lower-case letters or digits, starting with a letter"
        )
    return name


@dataclass(frozen=True)
class HostSpec:
    """One simulated host: index i (1-based), store size, file-backed memory on or off."""

    index: int
    store_mb: int = 1024
    file_backed: bool = True

    @property
    def name(self) -> str:
        return f"host{self.index}"

    @property
    def file_backed_memory_mb(self) -> int:
        """[libvirt] file_backed_memory: the store less the headroom, 0 when off."""
        return self.store_mb - STORE_HEADROOM_MB if self.file_backed else 0


def parse_host_option(text: str) -> tuple[int, HostSpec]:
    """`--host 2:file_backed=off,store_mb=512` → (2, HostSpec). InvalidInput names the fault."""
    index_text, _, settings = text.partition(":")
    if not index_text.isdigit() or not 1 <= int(index_text) <= MAX_HOSTS:
        raise InvalidInput(f"--host {text!r}: starts with a host number 1-{MAX_HOSTS}, then ':'")
    index = int(index_text)
    store_mb, file_backed = 1024, True
    for item in filter(None, settings.split(",")):
        key, _, value = item.partition("=")
        if key == "store_mb" and value.isdigit() and int(value) > STORE_HEADROOM_MB:
            store_mb = int(value)
        elif key == "file_backed" and value in ("on", "off"):
            file_backed = value == "on"
        else:
            raise InvalidInput(
                f"--host {text!r}: {item!r} is not store_mb=<MiB > {STORE_HEADROOM_MB}> "
                "or file_backed=on|off"
            )
    return index, HostSpec(index, store_mb, file_backed)


@dataclass(frozen=True)
class CloudSpec:
    """A cloud: its name, subnet index k (10.213.k.0/24), its hosts, its state directory."""

    name: str
    subnet_index: int
    hosts: tuple[HostSpec, ...]
    root: Path = DEFAULT_ROOT

    @property
    def base(self) -> Path:
        return self.root / self.name

    @property
    def bridge(self) -> str:
        return f"fmbr{self.subnet_index}"

    @property
    def gateway(self) -> str:
        """The bridge's address in the root namespace: where the control plane listens."""
        return self.address_of(None)

    def address_of(self, host: HostSpec | None) -> str:
        last = 1 if host is None else FIRST_HOST_OCTET + host.index
        return str(ipaddress.IPv4Address(bytes((*SUBNET_PREFIX, self.subnet_index, last))))

    def netns(self, host: HostSpec) -> str:
        return f"fm-{self.name}-{host.name}"

    def veth(self, host: HostSpec) -> str:
        # 15 characters at most: "fmv" + k (≤3) + "-" + cloud-unique index.
        return f"fmv{self.subnet_index}-{host.index}"

    def host_dir(self, host: HostSpec) -> Path:
        return self.base / host.name

    @property
    def state_path(self) -> Path:
        """filemem's [DEFAULT] state_path on every host: one path (domain XML is the same on
        every host), each host's own directory bind-mounted over it."""
        return self.base / "hostpath" / "state"

    def libvirt_uri(self, host: HostSpec) -> str:
        return f"qemu+tcp://{self.address_of(host)}/system"


def build_spec(
    name: str,
    count: int,
    subnet_index: int,
    overrides: dict[int, HostSpec] | None = None,
    root: Path = DEFAULT_ROOT,
) -> CloudSpec:
    """N hosts, host i taking its settings from `overrides` when given."""
    if not 1 <= count <= MAX_HOSTS:
        raise InvalidInput(f"host count {count}: 1-{MAX_HOSTS}")
    overrides = overrides or {}
    beyond = sorted(i for i in overrides if i > count)
    if beyond:
        raise InvalidInput(f"--host {beyond[0]}: the cloud has only {count} hosts")
    hosts = tuple(overrides.get(i, HostSpec(i)) for i in range(1, count + 1))
    return CloudSpec(check_name(name), subnet_index, hosts, root)


def pick_subnet_index(addresses_text: str, taken: set[int]) -> int:
    """A k in 1..254 whose 10.213.k.0/24 overlaps no address in `ip -o addr` output and no
    other cloud's k."""
    used = set(taken)
    for match in re.finditer(r"\binet (\d+\.\d+\.\d+\.\d+)/(\d+)", addresses_text):
        net = ipaddress.IPv4Network(f"{match.group(1)}/{match.group(2)}", strict=False)
        for k in range(1, 255):
            candidate = ipaddress.IPv4Network(f"{SUBNET_PREFIX[0]}.{SUBNET_PREFIX[1]}.{k}.0/24")
            if candidate.overlaps(net):
                used.add(k)
    for k in range(1, 255):
        if k not in used:
            return k
    raise InvalidInput("no free 10.213.k.0/24 subnet left")


def libvirtd_conf(system_text: str, address: str, host_uuid: str) -> str:
    """The system libvirtd.conf plus TCP listening (no auth, on the host's address only)."""
    ipaddress.IPv4Address(address)
    uuidlib.UUID(host_uuid)
    return (
        f"{system_text.rstrip()}\n\n# filemem cloud host: listen on the namespace's address\n"
        'listen_tls = 0\nlisten_tcp = 1\nauth_tcp = "none"\n'
        f'listen_addr = "{address}"\nhost_uuid = "{host_uuid}"\n'
        'log_outputs = "3:file:/var/log/libvirt/libvirtd.log"\n'
    )


def qemu_conf(system_text: str, address: str) -> str:
    """The system qemu.conf plus the store and the migration address: every host shares one
    hostname-resolving world, so QEMU's incoming migration must name the host's address."""
    ipaddress.IPv4Address(address)
    return (
        f"{system_text.rstrip()}\n\n# filemem cloud host\n"
        f'memory_backing_dir = "{MEMORY_BACKING_DIR}"\n'
        f'migration_address = "{address}"\nmigration_host = "{address}"\n'
    )
