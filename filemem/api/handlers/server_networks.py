"""POST /servers' networks: what the request asks for, by microversion, in nova's words."""

from __future__ import annotations

from fastapi import Request

from filemem.api.errors import BadRequest
from filemem.api.microversion import at_least
from filemem.api.schemas.common import is_uuid
from filemem.api.schemas.servers import NetworkRequest as NetworkEntry
from filemem.api.schemas.servers import ServerCreate
from filemem.common.addressing import is_ip_address
from filemem.conductor.network import (
    AUTO,
    NetworkDriver,
    NetworkError,
    NetworkingDisabled,
    NetworkRequest,
)

NO_NETWORKING = 'filemem has no networking: use networks "none"'


def requested_networks(
    request: Request, spec: ServerCreate, driver: NetworkDriver
) -> tuple[NetworkRequest, ...]:
    """The interfaces each server of the request gets: "auto" (and, before 2.37, no networks
    or an empty list) is one on the default network, "none" none, a list one per entry."""
    networks = spec.networks
    if networks is None and at_least(request, "2.37"):
        hint = "" if driver.enabled else f" ({NO_NETWORKING})"
        raise BadRequest(
            "Invalid input for field/attribute server: 'networks' is a required property "
            f"from microversion 2.37{hint}"
        )
    if networks == "none":
        return ()
    if networks is None or networks == "auto" or networks == []:
        if not driver.enabled and not at_least(request, "2.37"):
            return ()  # [network] driver = none: no interface, as before networks existed
        return AUTO
    assert isinstance(networks, list)
    if not driver.enabled:
        raise BadRequest(f"Invalid input for field/attribute networks: {NO_NETWORKING}")
    requested = tuple(_entry(entry) for entry in networks)
    if spec.counts[1] > 1 and any(entry.fixed_ip for entry in requested):
        raise BadRequest(
            "Failed to launch instances: max_count cannot be greater than 1 if an fixed_ip "
            "is specified."
        )
    return requested


def _entry(entry: NetworkEntry) -> NetworkRequest:
    if entry.port is not None:
        if entry.fixed_ip is not None:
            raise BadRequest(
                f"Specified Fixed IP '{entry.fixed_ip}' cannot be used with port "
                f"'{entry.port}': the two cannot be specified together."
            )
        raise BadRequest(
            f"Invalid input for field/attribute networks: port {entry.port}: filemem's "
            "built-in network creates the ports itself (it has no port API); name the "
            "network by uuid instead"
        )
    if entry.uuid is None:
        raise BadRequest("Bad network format: missing 'uuid'")
    if not is_uuid(entry.uuid):
        raise BadRequest(
            f"Bad networks format: network uuid is not in proper format ({entry.uuid})"
        )
    if entry.fixed_ip is not None and not is_ip_address(entry.fixed_ip):
        raise BadRequest(
            f"Invalid input for field/attribute fixed_ip. Value: {entry.fixed_ip}. "
            f"'{entry.fixed_ip}' is not a 'ip-address'"
        )
    return NetworkRequest(entry.uuid, entry.fixed_ip)


def refusal(error: NetworkError) -> BadRequest:
    """A driver's refusal as the 400 nova answers (its message names the network or IP)."""
    if isinstance(error, NetworkingDisabled):
        return BadRequest(f"Invalid input for field/attribute networks: {NO_NETWORKING}")
    return BadRequest(str(error))
