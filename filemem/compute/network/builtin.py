"""[network] driver = builtin: a Linux bridge with the gateway address, and a dnsmasq that
filemem starts and supervises itself, handing each port its address as a static DHCP lease."""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Iterable
from pathlib import Path

from filemem.common.guests import Nic
from filemem.compute.network import bridge, dnsmasq
from filemem.compute.network.base import InstancePorts, NetworkDriver, bridge_nics
from filemem.compute.network.settings import NetworkSettings

LOG = logging.getLogger(__name__)

# dnsmasq drops root for "nobody" and reads the hosts file again on SIGHUP as that user.
_PUBLIC_DIR = 0o755
_PUBLIC_FILE = 0o644


class BuiltinNetwork(NetworkDriver):
    """One host's bridge and DHCP server. The hosts file always lists the ports of the
    instances the agent last synced or plugged (their MAC, address and hostname), so an
    instance that is gone leaves nothing behind in it.

    Set up when first needed (the first pass or plug with a port), not at construction: a
    host without networked guests needs neither bridge nor dnsmasq. dnsmasq is not stopped
    when the agent stops: the guests run on, and must keep renewing their leases.
    """

    name = "builtin"

    def __init__(self, settings: NetworkSettings, dnsmasq_binary: str | None = None) -> None:
        self.settings = settings
        binary = dnsmasq_binary or shutil.which("dnsmasq") or "dnsmasq"
        self.dnsmasq = dnsmasq.Dnsmasq(dnsmasq.argv(binary, settings), settings.state_dir)
        self._ports: dict[str, InstancePorts] = {}
        self._lock = threading.RLock()

    @property
    def hosts_file(self) -> Path:
        return self.settings.state_dir / dnsmasq.HOSTS_FILE

    @property
    def lease_file(self) -> Path:
        return self.settings.state_dir / dnsmasq.LEASE_FILE

    def ensure_ready(self) -> None:
        """Bridge up with the gateway address, NAT when configured, dnsmasq running (started
        again if it died): all idempotent, so the reconcile loop calls it at every pass."""
        settings = self.settings
        with self._lock:
            settings.state_dir.mkdir(parents=True, exist_ok=True)
            os.chmod(settings.state_dir, _PUBLIC_DIR)
            bridge.ensure_bridge(settings.bridge, settings.gateway_interface, settings.mtu)
            if settings.nat_interface:
                bridge.ensure_nat(settings.network, settings.bridge, settings.nat_interface)
            if not self.hosts_file.exists():
                self._write_hosts(self._hosts_text())
            self.dnsmasq.ensure_running()

    def plug(self, ports: InstancePorts) -> tuple[Nic, ...]:
        """The bridge exists before libvirt attaches the taps to it (a live migration's
        destination included), and the addresses are served before the guest asks."""
        nics = bridge_nics(ports, self.settings.bridge, self.settings.mtu)
        if not nics:
            return ()
        with self._lock:
            self._ports[ports.uuid] = ports
            self.ensure_ready()
            self._update()
        return nics

    def unplug(self, uuid: str) -> None:
        with self._lock:
            if self._ports.pop(uuid, None) is not None:
                self._update()

    def sync(self, instances: Iterable[InstancePorts]) -> None:
        with self._lock:
            self._ports = {i.uuid: i for i in instances if i.nics}
            if self._ports:
                self.ensure_ready()
            if self._ports or self.hosts_file.exists():
                self._update()

    def leases(self) -> list[dnsmasq.Lease]:
        """What dnsmasq has handed out (its lease file)."""
        try:
            return dnsmasq.parse_leases(self.lease_file.read_text())
        except FileNotFoundError:
            return []

    def _hosts_text(self) -> str:
        entries = dnsmasq.host_entries(self._ports.values(), self.settings.network)
        return dnsmasq.hosts_text(entries)

    def _update(self) -> None:
        """Rewrite the hosts file when its content changes, then make dnsmasq read it. A lease
        of a MAC no longer listed is dropped first (dnsmasq is restarted without it): dnsmasq
        would refuse the address to the next port that gets it while the old lease lasts."""
        text = self._hosts_text()
        try:
            old = self.hosts_file.read_text()
        except FileNotFoundError:
            old = None
        if text == old:
            return
        self._write_hosts(text)
        listed = {line.split(",")[0] for line in text.splitlines()}
        stale = [lease for lease in self.leases() if lease.mac not in listed]
        if stale:
            self._drop_leases({lease.mac for lease in stale})
        elif self.dnsmasq.pid() is not None:
            self.dnsmasq.reload()

    def _write_hosts(self, text: str) -> None:
        self.settings.state_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.hosts_file.with_name(f".{self.hosts_file.name}.tmp")
        tmp.write_text(text)
        os.chmod(tmp, _PUBLIC_FILE)
        os.replace(tmp, self.hosts_file)

    def _drop_leases(self, macs: set[str]) -> None:
        running = self.dnsmasq.pid() is not None
        self.dnsmasq.stop()  # it writes its leases back as it goes: edit them while it is down
        kept = [
            line
            for line in self.lease_file.read_text().splitlines(keepends=True)
            if len(line.split()) < 2 or line.split()[1].lower() not in macs
        ]
        tmp = self.lease_file.with_name(f".{self.lease_file.name}.tmp")
        tmp.write_text("".join(kept))
        os.replace(tmp, self.lease_file)
        LOG.info("released the DHCP leases of %s", ", ".join(sorted(macs)))
        if running or self._ports:
            self.dnsmasq.ensure_running()
