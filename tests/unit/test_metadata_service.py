"""nova's metadata API behind Neutron's metadata proxy: signed headers, nova's paths."""

from __future__ import annotations

import base64
import json
import uuid as uuidlib

import pytest
from fastapi.testclient import TestClient

from filemem.api.metadata_service import create_metadata_app, signature
from filemem.db import api as db_api
from tests.unit.api_app import Api

SECRET = "proxy-secret"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHv1cf9eTCiLTlHf6Ps2Ul4c0PcTOt0yFbDh2dtUqDUc md"


def make_instance(api: Api, **columns: object) -> str:
    uuid = str(uuidlib.uuid4())
    values = {
        "uuid": uuid,
        "display_name": "Meta VM",
        "hostname": "meta-vm",
        "project_id": "p1",
        "user_id": "u1",
        "flavor_id": "1",
        "flavor_name": "small",
        "vcpus": 1,
        "memory_mb": 256,
        "root_gb": 0,
        "extra_specs": {},
        "image_id": api.make_image(f"img-{uuid[:8]}"),
        "metadata_": {"role": "db"},
        "host": "h1",
        "vm_state": "active",
        "power_state": 1,
        "key_name": "k1",
        "key_data": KEY,
        "user_data": base64.b64encode(b"#!/bin/sh\necho hi\n").decode(),
        **columns,
    }
    with api.ctx.database.session() as session:
        db_api.create_instance(session, values)
    return uuid


def headers(uuid: str, tenant: str = "p1", secret: str = SECRET) -> dict[str, str]:
    return {
        "X-Instance-ID": uuid,
        "X-Tenant-ID": tenant,
        "X-Instance-ID-Signature": signature(secret, uuid),
    }


@pytest.fixture
def metadata(api: Api) -> TestClient:
    return TestClient(create_metadata_app(api.ctx, SECRET))


def test_openstack_paths_serve_the_builders_content(api: Api, metadata: TestClient) -> None:
    uuid = make_instance(api)
    signed = headers(uuid)
    versions = metadata.get("/openstack", headers=signed)
    assert versions.status_code == 200
    assert versions.text.splitlines()[0] == "2012-08-10"
    assert versions.text.splitlines()[-1] == "latest"
    listing = metadata.get("/openstack/latest", headers=signed).text.splitlines()
    assert listing == [
        "meta_data.json",
        "user_data",
        "vendor_data.json",
        "network_data.json",
        "vendor_data2.json",
    ]
    meta = metadata.get("/openstack/latest/meta_data.json", headers=signed)
    assert meta.headers["content-type"].startswith("application/json")
    body = meta.json()
    assert (body["uuid"], body["hostname"], body["name"]) == (uuid, "meta-vm", "Meta VM")
    assert body["public_keys"] == {"k1": KEY} and body["meta"] == {"role": "db"}
    assert len(base64.b64decode(body["random_seed"])) == 512
    user_data = metadata.get("/openstack/2012-08-10/user_data", headers=signed)
    assert user_data.content == b"#!/bin/sh\necho hi\n"
    network = metadata.get("/openstack/latest/network_data.json", headers=signed).json()
    assert network == {"links": [], "networks": [], "services": []}
    assert (
        metadata.get("/openstack/2012-08-10/network_data.json", headers=signed).status_code == 404
    )
    assert metadata.get("/openstack/2099-01-01/meta_data.json", headers=signed).status_code == 404


def test_ec2_paths_as_nova_renders_them(api: Api, metadata: TestClient) -> None:
    uuid = make_instance(api)
    signed = headers(uuid)
    root = metadata.get("/")  # nova answers the versions without asking who calls
    assert root.status_code == 200 and root.text.splitlines()[-2:] == ["2009-04-04", "latest"]
    tree = metadata.get("/latest/meta-data/", headers=signed).text.splitlines()
    assert {"hostname", "local-hostname", "placement/", "public-keys/"} <= set(tree)
    assert metadata.get("/latest/meta-data/hostname", headers=signed).text == "meta-vm"
    keys = metadata.get("/latest/meta-data/public-keys/", headers=signed).text
    assert keys == "0=k1"
    assert metadata.get("/latest/meta-data/public-keys/0/openssh-key", headers=signed).text == KEY
    assert metadata.get("/2009-04-04/user-data", headers=signed).text == "#!/bin/sh\necho hi\n"
    assert metadata.get("/latest/meta-data/nothing", headers=signed).status_code == 404


@pytest.mark.parametrize("missing", ["X-Instance-ID", "X-Instance-ID-Signature", "X-Tenant-ID"])
def test_a_missing_header_is_400_naming_it(api: Api, metadata: TestClient, missing: str) -> None:
    signed = headers(make_instance(api))
    del signed[missing]
    response = metadata.get("/openstack/latest/meta_data.json", headers=signed)
    assert response.status_code == 400 and missing in response.text


def test_a_wrong_signature_is_403(api: Api, metadata: TestClient) -> None:
    uuid = make_instance(api)
    forged = headers(uuid, secret="not-the-secret")
    response = metadata.get("/openstack/latest/meta_data.json", headers=forged)
    assert response.status_code == 403 and "signature" in response.text
    # A signature for another instance does not open this one.
    other = {**headers(uuid), "X-Instance-ID-Signature": signature(SECRET, str(uuidlib.uuid4()))}
    assert metadata.get("/openstack/latest", headers=other).status_code == 403


def test_another_tenant_or_a_deleted_instance_is_404(api: Api, metadata: TestClient) -> None:
    uuid = make_instance(api)
    assert metadata.get("/openstack/latest", headers=headers(uuid, tenant="p2")).status_code == 404
    gone = make_instance(api, deleted_requested=True)
    assert metadata.get("/openstack/latest", headers=headers(gone)).status_code == 404
    nonsense = headers("not-a-uuid")
    assert metadata.get("/openstack/latest", headers=nonsense).status_code == 404


def test_no_secret_no_metadata_app(api: Api) -> None:
    with pytest.raises(ValueError, match="metadata_proxy_shared_secret"):
        create_metadata_app(api.ctx, "")


def test_json_bodies_are_json(api: Api, metadata: TestClient) -> None:
    signed = headers(make_instance(api))
    for name in ("vendor_data.json", "vendor_data2.json"):
        response = metadata.get(f"/openstack/latest/{name}", headers=signed)
        assert json.loads(response.content) in ({}, {"static": {}})
