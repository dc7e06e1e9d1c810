"""OpenStack Placement access: a microversioned client, embedded or over HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from filemem.exceptions import ConfigError
from filemem.placement.client import (
    AllocationCandidates,
    ConsumerGenerationConflict,
    GenerationConflict,
    InsufficientCapacity,
    PlacementApiError,
    PlacementClient,
    PlacementConflict,
    PlacementUnavailable,
    ResourceProvider,
    ResourceProviderNameConflict,
    Response,
    Transport,
)

if TYPE_CHECKING:
    from oslo_config import cfg

__all__ = [
    "AllocationCandidates",
    "ConsumerGenerationConflict",
    "GenerationConflict",
    "InsufficientCapacity",
    "PlacementApiError",
    "PlacementClient",
    "PlacementConflict",
    "PlacementUnavailable",
    "ResourceProvider",
    "ResourceProviderNameConflict",
    "Response",
    "Transport",
    "client_from_conf",
    "transport_from_conf",
]


def _auth_type(conf: cfg.ConfigOpts) -> str | None:
    """The keystoneauth plugin name, read from auth_section's group when that is set."""
    group = conf.placement
    if not group.auth_section:
        return str(group.auth_type) if group.auth_type else None
    from keystoneauth1 import loading as ks_loading

    # Registers auth_type in the auth_section group, where keystoneauth will look for it.
    ks_loading.register_auth_conf_options(conf, "placement")
    name = conf[group.auth_section].auth_type
    return str(name) if name else None


def transport_from_conf(conf: cfg.ConfigOpts) -> Transport:
    """Embedded Placement when [placement] endpoint and auth_type are empty, else HTTP.

    Needs the [placement] group (filemem.conf.placement) and [DEFAULT] state_path registered.
    """
    group = conf.placement
    auth_type = _auth_type(conf)
    if not group.endpoint and not auth_type:
        # Imported here: building the embedded app pulls in all of placement and oslo.db.
        from filemem.placement.embedded import EmbeddedPlacement

        return EmbeddedPlacement(Path(conf.state_path)).transport

    from keystoneauth1 import loading as ks_loading
    from oslo_config import cfg

    from filemem.placement.http import HttpTransport

    if not auth_type:
        return HttpTransport.with_token(group.endpoint, group.token, timeout=group.timeout)
    try:
        auth = ks_loading.load_auth_from_conf_options(conf, "placement")
    except cfg.DuplicateOptError as exc:
        raise ConfigError(
            "placement.auth_type",
            f"plugin {auth_type!r} has options that clash with [placement] ({exc}); set "
            "auth_section to a group of its own, or use endpoint + token for a static token",
        ) from exc
    session = ks_loading.load_session_from_conf_options(conf, "placement", auth=auth)
    return HttpTransport(
        session, group.endpoint or None, interface=group.interface, region_name=group.region_name
    )


def client_from_conf(conf: cfg.ConfigOpts) -> PlacementClient:
    """A PlacementClient configured from the [placement] group."""
    group = conf.placement
    return PlacementClient(
        transport_from_conf(conf), microversion=group.microversion, max_retries=group.max_retries
    )
