"""dnsmasq as the built-in network's DHCP server: its argv, hosts file and leases, and the
process itself (started daemonized, found again by its pid file, reloaded with SIGHUP)."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from filemem.compute.network.base import InstancePorts, NetworkError
from filemem.compute.network.settings import NetworkSettings

LOG = logging.getLogger(__name__)

HOSTS_FILE = "hosts"
LEASE_FILE = "dnsmasq.leases"
PID_FILE = "dnsmasq.pid"
LOG_FILE = "dnsmasq.log"
# Guests renew at half of it; a restarted agent has that long before a renewal is missed.
LEASE_TIME = "1h"
STANDARD_MTU = 1500
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
# One DNS label (RFC 1123): anything else could end the line early or add a dnsmasq option.
_HOSTNAME_RE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class HostEntry:
    """One line of the hosts file: the address this MAC gets, and the name it is told."""

    mac: str
    ip: ipaddress.IPv4Address
    hostname: str | None = None

    def line(self) -> str:
        return ",".join([self.mac, str(self.ip), *([self.hostname] if self.hostname else [])])


@dataclass(frozen=True)
class Lease:
    """One line of dnsmasq's lease file: expiry (epoch s, 0 = never), MAC, address, name."""

    expires: int
    mac: str
    ip: str
    hostname: str | None


def host_entries(
    instances: Iterable[InstancePorts], network: ipaddress.IPv4Network
) -> list[HostEntry]:
    """The hosts file's entries: each NIC with an address in the network, sorted by address.
    A MAC or address seen twice keeps its first entry (dnsmasq would refuse the file), and a
    hostname that is no DNS label, or another instance's, is left out (the address works)."""
    entries: list[HostEntry] = []
    macs: set[str] = set()
    ips: set[ipaddress.IPv4Address] = set()
    names: set[str] = set()
    for instance in sorted(instances, key=lambda i: i.uuid):
        name = (instance.hostname or "").lower()
        # One name per instance, all its NICs under it; another instance's name is not reused.
        usable = name if _HOSTNAME_RE.match(name) and name not in names else None
        for nic in instance.nics:
            mac = nic.mac_address.lower()
            ip = _address(nic.ip_address, network)
            if ip is None or not _MAC_RE.match(mac) or mac in macs or ip in ips:
                LOG.warning(
                    "instance %s: port %s (%s, %s) cannot be served by DHCP on %s",
                    instance.uuid,
                    nic.port_id,
                    nic.mac_address,
                    nic.ip_address,
                    network,
                )
                continue
            entries.append(HostEntry(mac, ip, usable))
            macs.add(mac)
            ips.add(ip)
            if usable:
                names.add(usable)
    return sorted(entries, key=lambda e: e.ip)


def _address(value: str | None, network: ipaddress.IPv4Network) -> ipaddress.IPv4Address | None:
    try:
        ip = ipaddress.IPv4Address(value or "")
    except ValueError:
        return None
    return ip if ip in network else None


def hosts_text(entries: Sequence[HostEntry]) -> str:
    return "".join(f"{entry.line()}\n" for entry in entries)


def argv(binary: str, settings: NetworkSettings) -> list[str]:
    """dnsmasq serving static DHCP leases on the bridge alone, DNS off (--port=0): no resolver
    for guests to abuse, none to collide with the host's; guests get [network]
    dns_nameservers instead."""
    state = settings.state_dir
    network = settings.network
    args = [
        binary,
        "--conf-file=/dev/null",  # nothing from /etc/dnsmasq.conf: this instance is filemem's
        "--port=0",
        f"--interface={settings.bridge}",
        "--bind-interfaces",
        "--except-interface=lo",
        "--no-resolv",
        "--no-hosts",
        f"--dhcp-range={network.network_address},static,{network.netmask},{LEASE_TIME}",
        f"--dhcp-hostsfile={state / HOSTS_FILE}",
        f"--dhcp-leasefile={state / LEASE_FILE}",
        f"--pid-file={state / PID_FILE}",
        f"--log-facility={state / LOG_FILE}",
        f"--dhcp-option=3,{settings.gateway}",
    ]
    if settings.dns_nameservers:
        args.append("--dhcp-option=6," + ",".join(str(ip) for ip in settings.dns_nameservers))
    if settings.mtu != STANDARD_MTU:
        args.append(f"--dhcp-option=26,{settings.mtu}")
    return args


def parse_leases(text: str) -> list[Lease]:
    """dnsmasq's lease file ("expiry mac ip name client-id" per line; "*" = no name)."""
    leases = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or not fields[0].isdigit():
            continue  # the DUID line of DHCPv6, or a torn line
        name = None if fields[3] == "*" else fields[3]
        leases.append(Lease(int(fields[0]), fields[1].lower(), fields[2], name))
    return leases


class Dnsmasq:
    """The network's dnsmasq: started daemonized with `argv`, so that it outlives the agent
    (guests keep renewing while the agent restarts), and found again from its pid file."""

    def __init__(self, args: Sequence[str], state_dir: Path) -> None:
        self.args = list(args)
        self.state_dir = state_dir

    @property
    def pid_file(self) -> Path:
        return self.state_dir / PID_FILE

    def pid(self) -> int | None:
        """The pid of a live dnsmasq started with our argv, or None."""
        try:
            pid = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError, ValueError):
            return None
        return pid if cmdline.split(b"\0")[:-1] == [a.encode() for a in self.args] else None

    def ensure_running(self) -> None:
        """Start dnsmasq unless ours runs; one started with other options is replaced."""
        if self.pid() is not None:
            return
        self._stop_stale()
        result = subprocess.run(self.args, capture_output=True, text=True, timeout=30, check=False)
        if result.returncode != 0:
            raise NetworkError(
                f"dnsmasq would not start (exit {result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}"
            )
        LOG.info("dnsmasq started for the built-in network (pid %s)", self.pid())

    def reload(self) -> None:
        """SIGHUP: dnsmasq reads the hosts file again (leases are kept)."""
        pid = self.pid()
        if pid is None:
            self.ensure_running()
            return
        os.kill(pid, signal.SIGHUP)

    def stop(self) -> None:
        pid = self.pid()
        if pid is not None:
            _terminate(pid)

    def _stop_stale(self) -> None:
        """A dnsmasq of this pid file started with other options (the configuration changed)
        holds the bridge's DHCP port: it goes before ours starts."""
        try:
            pid = int(self.pid_file.read_text().strip())
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except (FileNotFoundError, ProcessLookupError, ValueError):
            return
        if comm == "dnsmasq":
            LOG.info("stopping dnsmasq %d: it was started with other options", pid)
            _terminate(pid)


def _terminate(pid: int, timeout: float = 5.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
