"""filemem-api serves nova's metadata API on its own listener, for Neutron's metadata proxy."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from filemem.api.metadata_service import signature
from tests.functional.api_fixtures import (
    api_env,
    create_server,
    make_flavor,
    make_image,
    register_host,
    show_server,
)

SECRET = "functional-proxy-secret"
OPTIONS = (
    "force_config_drive = true\n"
    "[metadata]\nenabled = true\nlisten = 127.0.0.1\nlisten_port = 0\n"
    f"[neutron]\nmetadata_proxy_shared_secret = {SECRET}\n"
)


def test_metadata_listener_answers_the_proxy_and_refuses_forgeries(tmp_path: Path) -> None:
    with api_env(tmp_path, default=OPTIONS) as env:
        assert env.api is not None
        lines = [
            m for line in env.api.output() if (m := re.search(r"metadata listening on (\S+)", line))
        ]
        assert lines, env.api.output()
        metadata_url = lines[0].group(1)
        register_host(env, "md-host")
        server_id = create_server(
            env, "md-vm", make_flavor(env, "md.small"), make_image(env, "md-image")
        )
        server = show_server(env, server_id)
        assert server["config_drive"] == "True"  # [DEFAULT] force_config_drive
        signed = {
            "X-Instance-ID": server_id,
            "X-Tenant-ID": server["tenant_id"],
            "X-Instance-ID-Signature": signature(SECRET, server_id),
        }
        with httpx.Client(base_url=metadata_url, timeout=30) as guest:
            meta = guest.get("/openstack/latest/meta_data.json", headers=signed)
            assert meta.status_code == 200, meta.text
            assert (meta.json()["uuid"], meta.json()["hostname"]) == (server_id, "md-vm")
            assert guest.get("/latest/meta-data/hostname", headers=signed).text == "md-vm"
            forged = {**signed, "X-Instance-ID-Signature": signature("guess", server_id)}
            assert guest.get("/openstack/latest", headers=forged).status_code == 403
            # The Compute API is not served here: a guest reaches the metadata only.
            assert guest.get("/v2.1/servers", headers=signed).status_code == 404
