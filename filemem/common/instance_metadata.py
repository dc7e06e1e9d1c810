"""What a guest learns about itself, in nova's metadata format (config drive and metadata API)."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from filemem.common.agent_contract.answers import AgentInstance, NicView

# nova/api/metadata/base.py: the OpenStack versions a guest may ask for, oldest first. Each
# added files or keys; "latest" is the newest. Kept in nova's order: cloud-init walks them.
FOLSOM = "2012-08-10"
GRIZZLY = "2013-04-04"
HAVANA = "2013-10-17"
LIBERTY = "2015-10-15"
NEWTON_ONE = "2016-06-30"
NEWTON_TWO = "2016-10-06"
OCATA = "2017-02-22"
ROCKY = "2018-08-27"
VICTORIA = "2020-10-14"
EPOXY = "2025-04-04"
OPENSTACK_VERSIONS = (
    FOLSOM,
    GRIZZLY,
    HAVANA,
    LIBERTY,
    NEWTON_ONE,
    NEWTON_TWO,
    OCATA,
    ROCKY,
    VICTORIA,
    EPOXY,
)
LATEST = "latest"
# The EC2 versions a config drive carries (nova's newest, 2009-04-04, and "latest": the same).
EC2_VERSIONS = ("2009-04-04", LATEST)

MD_JSON_NAME = "meta_data.json"
VD_JSON_NAME = "vendor_data.json"
VD2_JSON_NAME = "vendor_data2.json"
NW_JSON_NAME = "network_data.json"
UD_NAME = "user_data"

# A default route's network and netmask (a route, not an address anything binds to).
DEFAULT_ROUTE = str(ipaddress.IPv4Address(0))
# nova's limit on user_data (the column is MEDIUMTEXT there; the API refuses more).
MAX_USER_DATA_BYTES = 65535
# nova.utils.sanitize_hostname: the lowest of the OSes' and dnsmasq's limits.
MAX_HOSTNAME_LENGTH = 63


class InvalidUserData(ValueError):
    """user_data is not base64 (nova's 400 "User data needs to be valid base 64.")."""


@dataclass(frozen=True)
class InstanceFacts:
    """The facts the metadata is made of: the agent view's, or the database's for the API."""

    uuid: str
    name: str
    hostname: str
    project_id: str = ""
    availability_zone: str | None = None
    launch_index: int = 0
    key_name: str | None = None
    public_keys: Mapping[str, str] = field(default_factory=dict)
    user_data: str | None = None  # base64 text, as the request gave it
    metadata: Mapping[str, str] = field(default_factory=dict)
    nics: Sequence[NicView] = ()
    admin_pass: str | None = None

    @classmethod
    def from_view(cls, view: AgentInstance) -> InstanceFacts:
        return cls(
            uuid=view.uuid,
            name=view.name,
            hostname=view.hostname or sanitize_hostname(view.name, f"Server-{view.uuid}"),
            project_id=view.project_id or "",
            availability_zone=view.availability_zone,
            launch_index=view.launch_index,
            key_name=view.key_name,
            public_keys=dict(view.public_keys),
            user_data=view.user_data,
            metadata=dict(view.metadata),
            nics=tuple(view.nics),
        )


def sanitize_hostname(name: str, default: str | None = None) -> str:
    """nova.utils.sanitize_hostname: RFC 952/1123 characters, lower case, at most 63."""
    text = name.encode("latin-1", "ignore").decode("latin-1")[:MAX_HOSTNAME_LENGTH]
    text = re.sub(r"[ _.]", "-", text)
    text = re.sub(r"[^\w.-]+", "", text)
    text = text.lower().strip(".-")
    if not text and default is not None:
        return default[:MAX_HOSTNAME_LENGTH]
    return text


def decode_user_data(text: str) -> bytes:
    """The raw bytes of base64 user data; InvalidUserData when it is not base64."""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise InvalidUserData("User data needs to be valid base 64.") from exc


def _since(required: str, version: str) -> bool:
    """Whether `version` ("latest" included) has what `required` added."""
    versions = (*OPENSTACK_VERSIONS, LATEST)
    return versions.index(version) >= versions.index(required)


def meta_data(
    facts: InstanceFacts, version: str = LATEST, random_seed: bytes | None = None
) -> dict[str, Any]:
    """openstack/<version>/meta_data.json (nova's _metadata_as_json). The random seed is the
    caller's (os.urandom(512) in nova), so this stays pure; None leaves it out."""
    data: dict[str, Any] = {"uuid": facts.uuid}
    if facts.metadata:
        data["meta"] = dict(facts.metadata)
    if facts.admin_pass is not None:
        data["admin_pass"] = facts.admin_pass
    if facts.key_name and facts.key_name in facts.public_keys:
        key = facts.public_keys[facts.key_name]
        data["public_keys"] = {facts.key_name: key}
        data["keys"] = [{"name": facts.key_name, "type": "ssh", "data": key}]
    data["hostname"] = facts.hostname
    data["name"] = facts.name
    data["launch_index"] = facts.launch_index
    data["availability_zone"] = facts.availability_zone
    if random_seed is not None and _since(GRIZZLY, version):
        data["random_seed"] = base64.b64encode(random_seed).decode("ascii")
    if _since(LIBERTY, version):
        data["project_id"] = facts.project_id
    if _since(NEWTON_ONE, version):
        data["devices"] = []  # nova lists tagged devices only; filemem has no device tags
    if _since(VICTORIA, version):
        data["dedicated_cpus"] = []
    return data


def network_data(nics: Sequence[NicView]) -> dict[str, Any]:
    """network_data.json (nova.virt.netutils.get_network_metadata): one "phy" link per NIC,
    a static "ipv4" network for each address, the DNS servers as services."""
    links: list[dict[str, Any]] = []
    networks: list[dict[str, Any]] = []
    services: list[dict[str, str]] = []
    for nic in nics:
        link_id = f"tap{nic.port_id[:11]}"
        links.append(
            {
                "id": link_id,
                "vif_id": nic.port_id,
                "type": "phy",
                "mtu": nic.mtu,
                "ethernet_mac_address": nic.mac_address,
            }
        )
        if not nic.ip_address or not nic.cidr:
            continue
        dns = [{"type": "dns", "address": addr} for addr in nic.dns_nameservers]
        routes = []
        if nic.gateway:
            routes.append(
                {"network": DEFAULT_ROUTE, "netmask": DEFAULT_ROUTE, "gateway": nic.gateway}
            )
        networks.append(
            {
                "id": f"network{len(networks)}",
                "type": "ipv4",
                "link": link_id,
                "ip_address": nic.ip_address,
                "netmask": str(ipaddress.ip_network(nic.cidr, strict=False).netmask),
                "routes": routes,
                "network_id": nic.network_id,
                "services": dns,
            }
        )
        services += [s for s in dns if s not in services]
    return {"links": links, "networks": networks, "services": services}


def vendor_data() -> dict[str, Any]:
    """vendor_data.json: nova's StaticJSON provider without a vendordata file."""
    return {}


def vendor_data2() -> dict[str, Any]:
    """vendor_data2.json with nova's default providers (StaticJSON only, no file)."""
    return {"static": {}}


def version_files(facts: InstanceFacts, version: str) -> list[str]:
    """The files under openstack/<version>/ (nova's _handle_version, without the metadata
    API's "password", which a config drive does not carry)."""
    names = [MD_JSON_NAME]
    if facts.user_data is not None:
        names.append(UD_NAME)
    if _since(HAVANA, version):
        names.append(VD_JSON_NAME)
    if _since(LIBERTY, version):
        names.append(NW_JSON_NAME)
    if _since(NEWTON_TWO, version):
        names.append(VD2_JSON_NAME)
    return names


def openstack_file(
    facts: InstanceFacts, version: str, name: str, random_seed: bytes | None = None
) -> bytes:
    """The bytes of openstack/<version>/<name>; KeyError for a file that version lacks."""
    if version not in (*OPENSTACK_VERSIONS, LATEST) or name not in version_files(facts, version):
        raise KeyError(f"openstack/{version}/{name}")
    if name == UD_NAME:
        assert facts.user_data is not None
        return decode_user_data(facts.user_data)
    documents = {
        MD_JSON_NAME: lambda: meta_data(facts, version, random_seed),
        VD_JSON_NAME: vendor_data,
        NW_JSON_NAME: lambda: network_data(facts.nics),
        VD2_JSON_NAME: vendor_data2,
    }
    return _json(documents[name]())


def ec2_meta_data(facts: InstanceFacts) -> dict[str, Any]:
    """ec2/<version>/meta-data.json, the part of nova's EC2 metadata filemem knows (no EC2 ids:
    cloud-init's ConfigDrive source reads the instance id from meta_data.json's uuid)."""
    ips = [nic.ip_address for nic in facts.nics if nic.ip_address]
    data: dict[str, Any] = {
        "ami-launch-index": facts.launch_index,
        "hostname": facts.hostname,
        "local-hostname": facts.hostname,
        "public-hostname": facts.hostname,
        "local-ipv4": ips[0] if ips else "",
        "public-ipv4": "",
        "placement": {"availability-zone": facts.availability_zone},
        "instance-action": "none",
    }
    if facts.key_name and facts.key_name in facts.public_keys:
        data["public-keys"] = {"0": {"openssh-key": facts.public_keys[facts.key_name]}}
    return data


def config_drive_files(facts: InstanceFacts, random_seed: bytes | None = None) -> dict[str, bytes]:
    """Every file of nova's config drive, by path (nova's metadata_for_config_drive): each
    OpenStack version and "latest", then EC2_VERSIONS."""
    files: dict[str, bytes] = {}
    for version in (*OPENSTACK_VERSIONS, LATEST):
        for name in version_files(facts, version):
            files[f"openstack/{version}/{name}"] = openstack_file(facts, version, name, random_seed)
    # nova's default config_drive_skip_versions leaves the newest EC2 version and "latest".
    for version in EC2_VERSIONS:
        if facts.user_data is not None:
            files[f"ec2/{version}/user-data"] = decode_user_data(facts.user_data)
        files[f"ec2/{version}/meta-data.json"] = _json(ec2_meta_data(facts))
    return files


def _json(document: Mapping[str, Any]) -> bytes:
    return json.dumps(document).encode()
