"""nova's metadata API paths (/openstack/..., /latest/meta-data/...) over the metadata builder."""

from __future__ import annotations

import posixpath
from typing import Any

from filemem.common.instance_metadata import (
    LATEST,
    OPENSTACK_VERSIONS,
    InstanceFacts,
    decode_user_data,
    ec2_meta_data,
    openstack_file,
    version_files,
)

# nova's EC2 versions (base.VERSIONS); filemem serves every one the same, newest, data.
EC2_VERSIONS = (
    "1.0",
    "2007-01-19",
    "2007-03-01",
    "2007-08-29",
    "2007-10-10",
    "2007-12-15",
    "2008-02-01",
    "2008-09-01",
    "2009-04-04",
)
TEXT = "text/plain"
JSON = "application/json"


def ec2_print(data: Any) -> bytes:
    """nova's ec2_md_print: a dict lists its keys (a sub-tree with a "/"), a list its lines."""
    if isinstance(data, dict):
        lines = []
        for key in sorted(data):
            value = data[key]
            if isinstance(value, dict) and "_name" in value:
                lines.append(str(value["_name"]))
            elif isinstance(value, dict):
                lines.append(f"{key}/")
            elif key != "_name":
                lines.append(key)
        return "\n".join(lines).encode()
    if isinstance(data, list):
        return "\n".join(str(item) for item in data).encode()
    if isinstance(data, bytes):
        return data
    return str(data).encode()


def versions_listing() -> bytes:
    """GET /: the EC2 versions, as nova lists them."""
    return ec2_print([*EC2_VERSIONS, LATEST])


def lookup(facts: InstanceFacts, path: str, random_seed: bytes | None = None) -> tuple[bytes, str]:
    """The body and content type of GET `path` (nova's InstanceMetadata.lookup); KeyError
    for a path nova answers 404."""
    tokens = [t for t in posixpath.normpath("/" + path).split("/") if t]
    if tokens[:1] != ["openstack"]:
        tokens = ["ec2", *tokens] if tokens[:1] != ["ec2"] else tokens
    if tokens[0] == "openstack":
        return _openstack(facts, tokens[1:], random_seed)
    if len(tokens) == 1:
        return versions_listing(), TEXT
    return _ec2(facts, tokens[1], tokens[2:])


def _openstack(
    facts: InstanceFacts, tokens: list[str], random_seed: bytes | None
) -> tuple[bytes, str]:
    if not tokens:
        return ec2_print([*OPENSTACK_VERSIONS, LATEST]), TEXT
    version = tokens[0]
    if version not in (*OPENSTACK_VERSIONS, LATEST):
        raise KeyError(version)
    if len(tokens) == 1:
        return ec2_print(version_files(facts, version)), TEXT
    if len(tokens) != 2:
        raise KeyError("/".join(tokens))
    body = openstack_file(facts, version, tokens[1], random_seed)
    return body, JSON if tokens[1].endswith(".json") else TEXT


def _ec2(facts: InstanceFacts, version: str, tokens: list[str]) -> tuple[bytes, str]:
    if version not in (*EC2_VERSIONS, LATEST):
        raise KeyError(version)
    meta = ec2_meta_data(facts)
    if "public-keys" in meta:
        # nova's rendering: public-keys/ lists "0=<name>", public-keys/0/ "openssh-key".
        meta["public-keys"]["0"]["_name"] = f"0={facts.key_name}"
    tree: dict[str, Any] = {"meta-data": meta}
    if facts.user_data is not None:
        tree["user-data"] = decode_user_data(facts.user_data)
    data: Any = tree
    for token in tokens:
        if not isinstance(data, dict) or token not in data:
            raise KeyError("/".join(tokens))
        data = data[token]
    return ec2_print(data), TEXT
