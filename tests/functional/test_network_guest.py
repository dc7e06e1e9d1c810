"""The built-in network on a real guest (libvirtd + QEMU TCG, root): the agent makes the
bridge and dnsmasq, the guest gets its address by DHCP and answers the host's ping, and its
delete leaves nothing in the hosts file, the leases or the bridge."""

from __future__ import annotations

import dataclasses
import ipaddress
import random
import subprocess
import time
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devtools.net_image import DHCP_PREFIX, ensure_net_initrd
from devtools.test_image import TestImage
from filemem.common.agent_contract.answers import NicView
from filemem.compute.network import bridge
from filemem.compute.network.builtin import BuiltinNetwork
from filemem.compute.network.settings import NetworkSettings
from filemem.compute.reconcile.plan import DesiredInstance
from filemem.placement.embedded import EmbeddedPlacement
from filemem.virt.xml.domain import Domain
from tests.agent_stack import IGNORE_TIMEOUT_WARNING, build_stack, close_stack
from tests.functional.conftest import DriverFactory, virsh, wait_for_console

pytestmark = [pytest.mark.functional, pytest.mark.filterwarnings(IGNORE_TIMEOUT_WARNING)]

PORT_ID = "5c0ffee0-1234-4abc-8def-0123456789ab"
MAC = "fa:16:3e:5c:0f:fe"


@pytest.fixture
def network(state_path: Path) -> Iterator[BuiltinNetwork]:
    """A network of its own: a bridge and subnet no other test (or helper) on the host uses."""
    third = random.randint(1, 254)
    subnet = ipaddress.IPv4Network(f"10.213.{third}.0/24")
    settings = NetworkSettings(
        driver="builtin",
        network=subnet,
        gateway=subnet.network_address + 1,
        bridge=f"fmt{uuidlib.uuid4().hex[:8]}",
        mtu=1400,
        dns_nameservers=(ipaddress.IPv4Address("192.0.2.53"),),
        nat_interface=None,
        state_dir=state_path / "network",
    )
    built = BuiltinNetwork(settings)
    yield built
    built.dnsmasq.stop()
    bridge.delete_bridge(settings.bridge)


def test_a_guest_gets_its_address_by_dhcp_and_leaves_nothing_behind(
    make_driver: DriverFactory,
    test_image: TestImage,
    state_path: Path,
    tmp_path: Path,
    embedded_placement: EmbeddedPlacement,
    network: BuiltinNetwork,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = network.settings
    address = str(settings.network.network_address + 10)
    image = {
        "name": "net",
        "kind": "kernel",
        "kernel_path": str(test_image.kernel),
        "initrd_path": str(ensure_net_initrd(test_image)),
        "cmdline": test_image.cmdline(),
    }
    driver = make_driver()
    stack = build_stack(tmp_path, state_path, driver, embedded_placement.client(), image)
    stack.loop.executor.network = network
    nic = NicView(
        port_id=PORT_ID,
        mac_address=MAC,
        network_id="net",
        network_name="private",
        ip_address=address,
    )
    watch = stack.loop.api.watch

    def with_ports(*args: Any) -> tuple[int, list[DesiredInstance]]:
        # The API side allocates ports; here every instance gets this one.
        cursor, wants = watch(*args)
        return cursor, [dataclasses.replace(w, nics=(nic,), hostname="vm-net") for w in wants]

    monkeypatch.setattr(stack.loop.api, "watch", with_ports)
    try:
        uuid = stack.boot()
        log = driver.console_log(uuid)
        wait_for_console(log, DHCP_PREFIX)  # its lease, or why it has none
        lease_line = f"{DHCP_PREFIX} ip={address} router={settings.gateway} mtu=1400"
        assert lease_line in log.read_text(), log.read_text()[-2000:]

        tap = f"tap{PORT_ID[:11]}"
        assert bridge.device_kind(tap) == "tun"
        devices = Domain.from_xml(virsh("dumpxml", f"instance-{uuid}")).devices
        assert devices is not None
        assert [(i.mac_address, i.source_bridge, i.model_type) for i in devices.interfaces] == [
            (MAC, settings.bridge, "virtio")
        ]
        assert network.hosts_file.read_text() == f"{MAC},{address},vm-net\n"
        assert [(lease.mac, lease.ip) for lease in network.leases()] == [(MAC, address)]
        assert network.leases()[0].expires > time.time()
        ping = ["busybox", "ping", "-c", "1", "-W", "5", address]
        assert subprocess.run(ping, capture_output=True, check=False).returncode == 0

        stack.act(uuid, "delete", task_state="deleting", deleted_requested=True)
        stack.converge()
        assert f"instance-{uuid}" not in virsh("list", "--all", "--name").split()
        assert network.hosts_file.read_text() == ""
        assert network.leases() == []
        assert bridge.device_kind(tap) is None
        assert network.dnsmasq.pid() is not None  # still serving for the next guest
    finally:
        close_stack(stack)
