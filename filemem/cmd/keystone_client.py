"""Keystone password auth for the `filemem` CLI: clouds.yaml / OS_* through openstacksdk's
config loader, a keystoneauth1 session, and the compute and image endpoints of the catalog."""

from __future__ import annotations

import os
from typing import Any

from keystoneauth1 import exceptions as ks_exceptions

from filemem.cmd.compute_api import ComputeApi
from filemem.exceptions import FilememError


class KeystoneLoginError(FilememError):
    """No token from Keystone (bad credentials, unreachable, or no such cloud)."""


def wants_keystone(cloud: str | None) -> bool:
    """--os-cloud, OS_CLOUD or OS_AUTH_URL: the user logs in through Keystone."""
    return bool(cloud or os.environ.get("OS_CLOUD") or os.environ.get("OS_AUTH_URL"))


def keystone_api(cloud: str | None, timeout: float = 30.0) -> ComputeApi:
    """The Compute API as the catalog names it, with a token from a password (or any other
    keystoneauth1) login described by clouds.yaml's `cloud` or the OS_* variables."""
    # openstacksdk's loader reads clouds.yaml, secure.yaml and OS_* exactly as the openstack
    # CLI does; imported here so that admin-token users never pay for it.
    from openstack import config as os_config
    from openstack import exceptions as os_exceptions

    try:
        region: Any = os_config.OpenStackConfig().get_one(cloud=cloud)
        session = region.get_session()
        token = session.get_token()
        compute = _endpoint(session, region, "compute")
        image = _endpoint(session, region, "image")
    except (os_exceptions.ConfigException, ks_exceptions.ClientException) as exc:
        raise KeystoneLoginError(f"Keystone login failed: {exc}") from exc
    return ComputeApi(compute, token, timeout, compute_url=compute, image_url=image)


def _endpoint(session: Any, region: Any, service_type: str) -> str:
    """The cloud's <service>_endpoint_override (as `filemem up`'s clouds.yaml has), else the
    catalog's endpoint for the configured interface and region."""
    url = region.get_endpoint(service_type) or session.get_endpoint(
        service_type=service_type,
        interface=region.get_interface(service_type),
        region_name=region.get_region_name(service_type),
    )
    if not url:
        raise KeystoneLoginError(f"the service catalog has no {service_type} endpoint")
    return str(url).rstrip("/")
