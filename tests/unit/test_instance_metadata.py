"""nova's metadata built from an instance's facts: meta_data.json, network_data.json, files."""

from __future__ import annotations

import base64
import json

import pytest

from filemem.common.agent_contract.answers import AgentInstance, NicView
from filemem.common.instance_metadata import (
    OPENSTACK_VERSIONS,
    InstanceFacts,
    InvalidUserData,
    config_drive_files,
    decode_user_data,
    meta_data,
    network_data,
    openstack_file,
    sanitize_hostname,
)

UUID = "0b6a4b8e-6f3e-4c36-9a0e-6c1f2d3e4f50"
PORT = "3f1c2b4a-9d8e-4f70-8a6b-1c2d3e4f5a6b"
NET = "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOfake user@host"
USER_DATA = b"#cloud-config\nruncmd: [echo hi]\n\xff binary too"
NIC = NicView(
    port_id=PORT,
    mac_address="fa:16:3e:00:00:01",
    network_id=NET,
    network_name="private",
    ip_address="10.0.0.5",
    cidr="10.0.0.0/24",
    gateway="10.0.0.1",
    dns_nameservers=["10.0.0.1", "9.9.9.9"],
    mtu=1450,
)
FACTS = InstanceFacts(
    uuid=UUID,
    name="My VM_1",
    hostname="my-vm-1",
    project_id="p1",
    availability_zone="nova",
    launch_index=2,
    key_name="k1",
    public_keys={"k1": KEY},
    user_data=base64.b64encode(USER_DATA).decode(),
    metadata={"role": "web"},
    nics=(NIC,),
)


def test_meta_data_latest_has_nova_keys() -> None:
    data = meta_data(FACTS, "latest", random_seed=b"\x01" * 512)
    assert data == {
        "uuid": UUID,
        "meta": {"role": "web"},
        "public_keys": {"k1": KEY},
        "keys": [{"name": "k1", "type": "ssh", "data": KEY}],
        "hostname": "my-vm-1",
        "name": "My VM_1",
        "launch_index": 2,
        "availability_zone": "nova",
        "random_seed": base64.b64encode(b"\x01" * 512).decode(),
        "project_id": "p1",
        "devices": [],
        "dedicated_cpus": [],
    }


def test_meta_data_versions_add_keys_as_nova() -> None:
    """Folsom has no random seed, project_id comes with Liberty, devices with Newton."""
    folsom = meta_data(FACTS, "2012-08-10", random_seed=b"x")
    assert "random_seed" not in folsom and "project_id" not in folsom
    liberty = meta_data(FACTS, "2015-10-15", random_seed=b"x")
    assert liberty["project_id"] == "p1" and "devices" not in liberty
    assert "devices" in meta_data(FACTS, "2016-06-30")


def test_meta_data_without_key_or_metadata_leaves_them_out() -> None:
    bare = InstanceFacts(uuid=UUID, name="vm", hostname="vm", key_name="gone")
    data = meta_data(bare)
    assert "public_keys" not in data and "keys" not in data and "meta" not in data
    assert "random_seed" not in data  # none given: the builder draws no randomness itself


def test_admin_pass_only_when_given() -> None:
    assert "admin_pass" not in meta_data(FACTS)
    with_pass = InstanceFacts(uuid=UUID, name="vm", hostname="vm", admin_pass="s3cret")
    assert meta_data(with_pass)["admin_pass"] == "s3cret"


def test_network_data_matches_nova_shape() -> None:
    link_id = f"tap{PORT[:11]}"
    assert network_data([NIC]) == {
        "links": [
            {
                "id": link_id,
                "vif_id": PORT,
                "type": "phy",
                "mtu": 1450,
                "ethernet_mac_address": "fa:16:3e:00:00:01",
            }
        ],
        "networks": [
            {
                "id": "network0",
                "type": "ipv4",
                "link": link_id,
                "ip_address": "10.0.0.5",
                "netmask": "255.255.255.0",
                "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"}],
                "network_id": NET,
                "services": [
                    {"type": "dns", "address": "10.0.0.1"},
                    {"type": "dns", "address": "9.9.9.9"},
                ],
            }
        ],
        "services": [
            {"type": "dns", "address": "10.0.0.1"},
            {"type": "dns", "address": "9.9.9.9"},
        ],
    }


def test_network_data_nic_without_address_is_a_link_only() -> None:
    bare = NIC.model_copy(update={"ip_address": None})
    data = network_data([bare, NIC])
    assert len(data["links"]) == 2 and len(data["networks"]) == 1
    assert data["networks"][0]["id"] == "network0"
    assert network_data([]) == {"links": [], "networks": [], "services": []}


def test_config_drive_paths_are_novas() -> None:
    """The same list as nova's test_metadata (metadata_for_config_drive), as a set."""
    expected = {"ec2/2009-04-04/user-data", "ec2/2009-04-04/meta-data.json"}
    expected |= {"ec2/latest/user-data", "ec2/latest/meta-data.json"}
    for version in (*OPENSTACK_VERSIONS, "latest"):
        expected |= {f"openstack/{version}/meta_data.json", f"openstack/{version}/user_data"}
        if version >= "2013-10-17":  # "latest" sorts after every date
            expected.add(f"openstack/{version}/vendor_data.json")
        if version >= "2015-10-15":
            expected.add(f"openstack/{version}/network_data.json")
        if version >= "2016-10-06":
            expected.add(f"openstack/{version}/vendor_data2.json")
    files = config_drive_files(FACTS, random_seed=b"r" * 512)
    assert set(files) == expected
    assert files["openstack/latest/user_data"] == USER_DATA  # raw bytes, decoded
    assert json.loads(files["openstack/latest/vendor_data2.json"]) == {"static": {}}
    assert json.loads(files["openstack/latest/vendor_data.json"]) == {}
    assert json.loads(files["openstack/latest/meta_data.json"])["uuid"] == UUID
    ec2 = json.loads(files["ec2/latest/meta-data.json"])
    assert ec2["local-ipv4"] == "10.0.0.5" and ec2["hostname"] == "my-vm-1"
    assert ec2["public-keys"] == {"0": {"openssh-key": KEY}}


def test_no_user_data_no_user_data_files() -> None:
    files = config_drive_files(InstanceFacts(uuid=UUID, name="vm", hostname="vm"))
    assert not [path for path in files if "user" in path]
    with pytest.raises(KeyError):
        openstack_file(InstanceFacts(uuid=UUID, name="vm", hostname="vm"), "latest", "user_data")


def test_unknown_version_or_file_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        openstack_file(FACTS, "2099-01-01", "meta_data.json")
    with pytest.raises(KeyError):
        openstack_file(FACTS, "2012-08-10", "network_data.json")  # Liberty added it


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("My VM_1", "my-vm-1"),
        ("web.example.com", "web-example-com"),
        ("--a b--", "a-b"),
        ("x" * 80, "x" * 63),
        ("ünïcode☃", "ünïcode"),
    ],
)
def test_sanitize_hostname_as_nova(name: str, expected: str) -> None:
    assert sanitize_hostname(name) == expected


def test_sanitize_hostname_default_when_nothing_is_left() -> None:
    assert sanitize_hostname("☃☃", f"Server-{UUID}") == f"Server-{UUID}"


def test_decode_user_data_refuses_what_is_not_base64() -> None:
    assert decode_user_data(base64.b64encode(b"hi").decode()) == b"hi"
    for bad in ("not base64!", "abc", "é"):
        with pytest.raises(InvalidUserData):
            decode_user_data(bad)


def test_facts_from_the_agent_view() -> None:
    view = AgentInstance.model_validate(
        {
            "uuid": UUID,
            "name": "Web 1",
            "vm_state": "building",
            "flavor": {"name": "m1", "vcpus": 1, "memory_mb": 256},
            "image": {"kind": "kernel"},
            "key_name": "k1",
            "public_keys": {"k1": KEY},
            "nics": [NIC.model_dump()],
        }
    )
    facts = InstanceFacts.from_view(view)
    assert facts.hostname == "web-1"  # an older API sends no hostname: derived as nova does
    assert meta_data(facts)["public_keys"] == {"k1": KEY}
    assert facts.nics == (NIC,)
