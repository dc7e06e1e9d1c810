"""POST /servers networks with the built-in network, and the views of the ports it allocates."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from filemem.db import api as db_api
from filemem.db.models import Port
from filemem.placement.embedded import EmbeddedPlacement
from tests.unit.network_app import NETWORK_ID, NetworkApp, network_app

MAC = re.compile(r"^fa:16:3e(:[0-9a-f]{2}){3}$")
UNKNOWN = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def net(embedded_placement: EmbeddedPlacement, tmp_path: Path) -> Iterator[NetworkApp]:
    yield from network_app(tmp_path, embedded_placement, memory_mb=16384)


@pytest.fixture
def small(embedded_placement: EmbeddedPlacement, tmp_path: Path) -> Iterator[NetworkApp]:
    """A /29: five guest addresses (.2 to .6)."""
    yield from network_app(tmp_path, embedded_placement, "cidr = 10.77.0.0/29\n")


def ports_held(app: NetworkApp) -> int:
    with app.ctx.database.reader() as session:
        return int(session.scalar(select(func.count()).select_from(Port)) or 0)


def error(response: object) -> str:
    body = response.json()  # type: ignore[attr-defined]
    return str(next(iter(body.values()))["message"])


def test_auto_attaches_the_default_network_with_nova_shapes(net: NetworkApp) -> None:
    server_id = net.boot_on("auto")
    server = net.server(server_id)
    (entry,) = server["addresses"]["private"]
    assert entry["addr"] == "10.98.0.2" and entry["version"] == 4
    assert entry["OS-EXT-IPS:type"] == "fixed" and MAC.match(entry["OS-EXT-IPS-MAC:mac_addr"])
    assert server["accessIPv4"] == "" and server["accessIPv6"] == ""
    ips = net.call("admin", "GET", f"/servers/{server_id}/ips").json()
    assert ips == {"addresses": {"private": [{"version": 4, "addr": "10.98.0.2"}]}}
    one = net.call("admin", "GET", f"/servers/{server_id}/ips/private").json()
    assert one == {"private": [{"version": 4, "addr": "10.98.0.2"}]}
    missing = net.call("admin", "GET", f"/servers/{server_id}/ips/public")
    assert missing.status_code == 404
    assert error(missing) == "Instance is not a member of specified network"
    listed = net.call("admin", "GET", f"/servers/{server_id}/os-interface").json()
    (attachment,) = listed["interfaceAttachments"]
    assert set(attachment) == {"port_state", "fixed_ips", "port_id", "net_id", "mac_addr"}
    assert attachment["port_state"] == "ACTIVE" and attachment["net_id"] == NETWORK_ID
    assert attachment["mac_addr"] == entry["OS-EXT-IPS-MAC:mac_addr"]
    (fixed,) = attachment["fixed_ips"]
    assert fixed["ip_address"] == "10.98.0.2" and len(fixed["subnet_id"]) == 36
    port = attachment["port_id"]
    shown = net.call("admin", "GET", f"/servers/{server_id}/os-interface/{port}").json()
    assert shown == {"interfaceAttachment": attachment}
    other = net.call("admin", "GET", f"/servers/{server_id}/os-interface/{UNKNOWN}")
    assert other.status_code == 404


def test_each_server_gets_its_own_address(net: NetworkApp) -> None:
    first, second = net.boot_on("auto"), net.boot_on([{"uuid": NETWORK_ID}])
    listed = net.call("admin", "GET", "/servers/detail", "2.37").json()["servers"]
    addresses = {s["id"]: s["addresses"]["private"][0]["addr"] for s in listed}
    assert addresses == {first: "10.98.0.2", second: "10.98.0.3"}


def test_none_and_absent_before_2_37(net: NetworkApp) -> None:
    assert net.server(net.boot_on("none"))["addresses"] == {}
    response = net.create(version="2.36")
    assert response.status_code == 202, response.text
    assert list(net.server(response.json()["server"]["id"])["addresses"]) == ["private"]
    required = net.create()
    assert required.status_code == 400 and "'networks' is a required property" in error(required)


def test_fixed_ip_is_honoured_when_free_and_in_the_subnet(net: NetworkApp) -> None:
    server_id = net.boot_on([{"uuid": NETWORK_ID, "fixed_ip": "10.98.0.77"}])
    assert net.server(server_id)["addresses"]["private"][0]["addr"] == "10.98.0.77"
    taken = net.create(networks=[{"uuid": NETWORK_ID, "fixed_ip": "10.98.0.77"}])
    assert taken.status_code == 400
    assert error(taken) == f"Fixed IP address 10.98.0.77 is already in use on instance {server_id}."
    outside = net.create(networks=[{"uuid": NETWORK_ID, "fixed_ip": "10.99.0.7"}])
    assert outside.status_code == 400 and "Fixed IP 10.99.0.7 is not a valid" in error(outside)
    gateway = net.create(networks=[{"uuid": NETWORK_ID, "fixed_ip": "10.98.0.1"}])
    assert gateway.status_code == 400 and "10.98.0.1" in error(gateway)
    bad = net.create(networks=[{"uuid": NETWORK_ID, "fixed_ip": "ten"}])
    assert bad.status_code == 400 and "fixed_ip" in error(bad)
    many = net.create(networks=[{"uuid": NETWORK_ID, "fixed_ip": "10.98.0.9"}], max_count=2)
    assert many.status_code == 400 and "max_count cannot be greater than 1" in error(many)
    assert ports_held(net) == 1


@pytest.mark.parametrize(
    ("networks", "message"),
    [
        ([{"uuid": UNKNOWN}], f"Network {UNKNOWN} could not be found."),
        ([{"uuid": "private"}], "Bad networks format: network uuid is not in proper format"),
        ([{"port": UNKNOWN}], "has no port API"),
        ([{"fixed_ip": "10.98.0.5"}], "Bad network format: missing 'uuid'"),
    ],
)
def test_refused_networks_are_400_and_create_nothing(
    net: NetworkApp, networks: object, message: str
) -> None:
    response = net.create(networks=networks)
    assert response.status_code == 400, response.text
    assert message in error(response)
    assert net.call("admin", "GET", "/servers").json()["servers"] == []
    assert ports_held(net) == 0


def test_a_full_network_puts_the_server_in_error_and_leaks_nothing(small: NetworkApp) -> None:
    booted = [small.boot_on("auto", name=f"vm{i}") for i in range(5)]
    addresses = {small.server(s)["addresses"]["private"][0]["addr"] for s in booted}
    assert addresses == {f"10.77.0.{n}" for n in range(2, 7)}
    late = small.boot_on("auto", name="late")
    server = small.server(late)
    assert server["status"] == "ERROR" and server["addresses"] == {}
    assert server["fault"]["code"] == 500
    assert server["fault"]["message"] == (
        f"Build of instance {late} aborted: Failed to allocate the network(s) with error No "
        f"fixed IP addresses available for network: {NETWORK_ID}, not rescheduling."
    )
    assert small.placement.get_allocations(late)[1] == {}
    assert ports_held(small) == 5
    # Deleting one frees its address for the next server: the agent's "gone" drops the row,
    # and its port goes with it.
    assert small.call("admin", "DELETE", f"/servers/{late}").status_code == 204
    assert small.call("admin", "DELETE", f"/servers/{booted[0]}").status_code == 204
    gone = small.call("admin", "POST", f"/filemem/v1/instances/{booted[0]}/gone")
    assert gone.status_code == 204, gone.text
    assert ports_held(small) == 4
    again = small.boot_on("auto", name="again")
    assert small.server(again)["addresses"]["private"][0]["addr"] == "10.77.0.2"


def test_a_build_that_ends_in_error_releases_its_ports(net: NetworkApp) -> None:
    huge = net.flavor_of("huge", ram=32768)
    server_id = net.boot_on("auto", flavorRef=huge)
    server = net.server(server_id)
    assert server["status"] == "ERROR" and "No valid host" in server["fault"]["message"]
    assert server["addresses"] == {} and ports_held(net) == 0


def test_the_agent_gets_the_nics(net: NetworkApp) -> None:
    server_id = net.boot_on("auto")
    port = net.call("admin", "GET", f"/servers/{server_id}/os-interface").json()
    port_id = port["interfaceAttachments"][0]["port_id"]
    answer = net.call("admin", "GET", f"/filemem/v1/hosts/{net.host}/instances").json()
    (instance,) = [i for i in answer["instances"] if i["uuid"] == server_id]
    (nic,) = instance["nics"]
    assert nic["port_id"] == port_id and nic["ip_address"] == "10.98.0.2"
    assert (nic["network_id"], nic["network_name"]) == (NETWORK_ID, "private")
    assert (nic["cidr"], nic["gateway"], nic["mtu"]) == ("10.98.0.0/24", "10.98.0.1", 1500)
    assert (nic["vif_type"], nic["bridge"]) == ("bridge", "fmguest0")


def test_neutron_view_of_networks_and_subnets(net: NetworkApp) -> None:
    versions = net.call("admin", "GET", "/network/").json()["versions"]
    assert versions[0]["id"] == "v2.0" and versions[0]["links"][0]["href"].endswith("/v2.0/")
    (network,) = net.call("admin", "GET", "/network/v2.0/networks").json()["networks"]
    assert (network["id"], network["name"], network["status"]) == (NETWORK_ID, "private", "ACTIVE")
    assert network["shared"] is True and network["mtu"] == 1500
    by_name = net.call("member_a", "GET", "/network/v2.0/networks?name=private").json()
    assert by_name["networks"] == [network]
    assert net.call("admin", "GET", "/network/v2.0/networks?name=other").json()["networks"] == []
    shown = net.call("admin", "GET", f"/network/v2.0/networks/{NETWORK_ID}").json()
    assert shown == {"network": network}
    missing = net.call("admin", "GET", "/network/v2.0/networks/private")
    assert missing.status_code == 404
    assert missing.json()["NeutronError"]["type"] == "NetworkNotFound"
    (subnet,) = net.call("admin", "GET", "/network/v2.0/subnets").json()["subnets"]
    assert subnet["id"] == network["subnets"][0] and subnet["network_id"] == NETWORK_ID
    assert (subnet["cidr"], subnet["gateway_ip"], subnet["ip_version"]) == (
        "10.98.0.0/24",
        "10.98.0.1",
        4,
    )
    assert subnet["allocation_pools"] == [{"start": "10.98.0.2", "end": "10.98.0.254"}]
    one = net.call("admin", "GET", f"/network/v2.0/subnets/{subnet['id']}").json()
    assert one == {"subnet": subnet}
    assert net.call("admin", "GET", f"/network/v2.0/subnets/{UNKNOWN}").status_code == 404
    assert net.call("admin", "GET", "/network/v2.0/extensions").json() == {"extensions": []}


def test_neutron_ports_by_server_and_project(net: NetworkApp) -> None:
    mine = net.boot_on("auto", who="member_a")
    theirs = net.boot_on("auto", who="member_b")
    ports = net.call("admin", "GET", "/network/v2.0/ports").json()["ports"]
    assert {p["device_id"] for p in ports} == {mine, theirs}
    own = net.call("member_a", "GET", "/network/v2.0/ports").json()["ports"]
    assert [p["device_id"] for p in own] == [mine]
    (port,) = own
    assert port["project_id"] == "project-a" and port["device_owner"] == "compute:nova"
    assert port["fixed_ips"][0]["ip_address"] == "10.98.0.2" and "binding:host_id" not in port
    filtered = net.call("admin", "GET", f"/network/v2.0/ports?device_id={theirs}").json()
    (their_port,) = filtered["ports"]
    assert their_port["binding:host_id"] == net.host
    for query in (f"network_id={UNKNOWN}", "network_id=private", "device_id=x"):
        assert net.call("admin", "GET", f"/network/v2.0/ports?{query}").json() == {"ports": []}
    by_network = net.call("admin", "GET", f"/network/v2.0/ports?network_id={NETWORK_ID}")
    assert len(by_network.json()["ports"]) == 2
    shown = net.call("member_a", "GET", f"/network/v2.0/ports/{port['id']}")
    assert shown.json() == {"port": port}
    hidden = net.call("member_a", "GET", f"/network/v2.0/ports/{their_port['id']}")
    assert hidden.status_code == 404
    # os-interface of another project's server is that server's 404.
    assert net.call("member_a", "GET", f"/servers/{theirs}/os-interface").status_code == 404


def test_actions_keep_the_address(net: NetworkApp) -> None:
    """Ports belong to the instance: reboot, rebuild, stop and suspend reallocate nothing."""
    server_id = net.boot_on("auto")
    before = net.server(server_id)["addresses"]
    actions = (
        {"reboot": {"type": "HARD"}},
        {"rebuild": {"imageRef": net.image}},
        {"os-stop": None},
        {"suspend": None},
    )
    for action in actions:
        with net.ctx.database.session() as session:
            values = {"vm_state": "active", "task_state": None, "power_state": 1}
            assert db_api.update_instance(session, server_id, values) is not None
        response = net.call("admin", "POST", f"/servers/{server_id}/action", json=action)
        assert response.status_code == 202, (action, response.text)
        assert net.server(server_id)["addresses"] == before
    assert ports_held(net) == 1


def test_interfaces_keep_the_order_asked_for(net: NetworkApp) -> None:
    wanted = ["10.98.0.50", "10.98.0.40", "10.98.0.45"]
    server_id = net.boot_on([{"uuid": NETWORK_ID, "fixed_ip": ip} for ip in wanted])
    listed = net.call("admin", "GET", f"/servers/{server_id}/os-interface").json()
    assert [a["fixed_ips"][0]["ip_address"] for a in listed["interfaceAttachments"]] == wanted
    assert [a["addr"] for a in net.server(server_id)["addresses"]["private"]] == wanted
    answer = net.call("admin", "GET", f"/filemem/v1/hosts/{net.host}/instances").json()
    (instance,) = [i for i in answer["instances"] if i["uuid"] == server_id]
    assert [nic["ip_address"] for nic in instance["nics"]] == wanted
