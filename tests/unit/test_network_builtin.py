"""The builtin driver's host plumbing for real (root, no guest): the bridge, dnsmasq found
again after an agent restart, revived when it dies, replaced when its options change; and the
startup checks that refuse a host whose network cannot work."""

from __future__ import annotations

import ipaddress
import os
import shutil
import signal
import subprocess
import sys
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from filemem import conf as filemem_conf
from filemem.common.agent_contract.answers import NicView
from filemem.common.findings import Severity
from filemem.compute.network import bridge, settings
from filemem.compute.network.base import InstancePorts, NetworkError
from filemem.compute.network.builtin import BuiltinNetwork
from filemem.compute.network.setup import check_network

pytestmark = pytest.mark.root

NIC = NicView(
    port_id="p1",
    mac_address="fa:16:3e:00:00:0a",
    network_id="net",
    network_name="private",
    ip_address="10.214.9.10",
)


def make_settings(state: Path, name: str, mtu: int = 1500) -> settings.NetworkSettings:
    subnet = ipaddress.IPv4Network("10.214.9.0/24")
    return settings.NetworkSettings(
        driver="builtin",
        network=subnet,
        gateway=subnet.network_address + 1,
        bridge=name,
        mtu=mtu,
        dns_nameservers=(),
        nat_interface=None,
        state_dir=state / "network",
    )


@pytest.fixture
def name() -> Iterator[str]:
    bridge_name = f"fmu{uuidlib.uuid4().hex[:8]}"
    yield bridge_name
    bridge.delete_bridge(bridge_name)


@pytest.fixture
def state() -> Iterator[Path]:
    # dnsmasq reads the hosts file as nobody: the state directory must be searchable.
    path = Path("/var/tmp/filemem-tests") / uuidlib.uuid4().hex[:12]
    path.mkdir(mode=0o711, parents=True)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_an_agent_restart_finds_dnsmasq_running_and_a_dead_one_is_revived(
    state: Path, name: str
) -> None:
    first = BuiltinNetwork(make_settings(state, name))
    try:
        first.plug(InstancePorts("u1", "vm", (NIC,)))
        pid = first.dnsmasq.pid()
        assert pid is not None
        assert bridge.device_kind(name) == "bridge"

        again = BuiltinNetwork(make_settings(state, name))  # a restarted agent
        again.sync([InstancePorts("u1", "vm", (NIC,))])
        assert again.dnsmasq.pid() == pid
        assert again.hosts_file.read_text() == "fa:16:3e:00:00:0a,10.214.9.10,vm\n"

        os.kill(pid, signal.SIGKILL)
        again.sync([InstancePorts("u1", "vm", (NIC,))])  # the next reconcile pass
        revived = again.dnsmasq.pid()
        assert revived is not None and revived != pid
    finally:
        first.dnsmasq.stop()


def test_changed_options_replace_dnsmasq_and_the_bridge_is_kept(state: Path, name: str) -> None:
    first = BuiltinNetwork(make_settings(state, name))
    changed = BuiltinNetwork(make_settings(state, name, mtu=1400))
    try:
        first.ensure_ready()
        old = first.dnsmasq.pid()
        changed.ensure_ready()
        assert changed.dnsmasq.pid() not in (None, old)
        assert not Path(f"/proc/{old}").exists()
        shown = subprocess.run(["ip", "-o", "addr", "show", name], capture_output=True, text=True)
        assert shown.stdout.count("inet ") == 1 and "10.214.9.1/24" in shown.stdout
    finally:
        first.dnsmasq.stop()
        changed.dnsmasq.stop()


def test_a_bridge_name_taken_by_another_device_is_refused(
    state: Path, name: str, tmp_path: Path
) -> None:
    peer = f"{name}p"
    subprocess.run(["ip", "link", "add", name, "type", "veth", "peer", "name", peer], check=True)
    try:
        with pytest.raises(NetworkError, match=r"\[network\] bridge"):
            BuiltinNetwork(make_settings(state, name)).ensure_ready()
        config = tmp_path / "filemem.conf"
        config.write_text(f"[DEFAULT]\nstate_path = {state}\n[network]\nbridge = {name}\n")
        found = check_network(filemem_conf.load(config_files=[str(config)]))
        assert [(f.severity, f.option) for f in found] == [(Severity.ERROR, "[network] bridge")]
        assert "veth" in found[0].message
    finally:
        subprocess.run(["ip", "link", "del", name], check=False)


def test_nat_is_set_up_once_however_often_it_is_ensured() -> None:
    """In a network namespace of its own: its forwarding switch and iptables are its own."""
    namespace = f"fmnat{uuidlib.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", namespace], check=True)
    inside = ["ip", "netns", "exec", namespace]
    code = (
        "import ipaddress\n"
        "from filemem.compute.network.bridge import ensure_nat\n"
        "for _ in range(2):\n"
        "    ensure_nat(ipaddress.IPv4Network('10.216.0.0/24'), 'fmbr0', 'lo')\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    try:
        subprocess.run([*inside, sys.executable, "-c", code], check=True, env=env)

        def rules(table: str, chain: str) -> list[str]:
            listed = subprocess.run(
                [*inside, "iptables", "-w", "-t", table, "-S", chain],
                check=True,
                capture_output=True,
                text=True,
            )
            return [line for line in listed.stdout.splitlines() if line.startswith("-A")]

        assert rules("nat", "POSTROUTING") == [
            "-A POSTROUTING -s 10.216.0.0/24 ! -d 10.216.0.0/24 -o lo -j MASQUERADE"
        ]
        assert len(rules("filter", "FORWARD")) == 2
        forward = subprocess.run(
            [*inside, "cat", "/proc/sys/net/ipv4/ip_forward"], capture_output=True, text=True
        )
        assert forward.stdout.strip() == "1"
    finally:
        subprocess.run(["ip", "netns", "del", namespace], check=False)
