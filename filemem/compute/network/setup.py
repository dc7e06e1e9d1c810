"""The host's network driver from [network], and the startup checks that refuse a bad one."""

from __future__ import annotations

import shutil

from oslo_config import cfg

from filemem.common import findings
from filemem.common.findings import Finding
from filemem.compute.network import bridge, settings
from filemem.compute.network.base import NetworkDriver, NoNetwork
from filemem.compute.network.builtin import BuiltinNetwork
from filemem.exceptions import ConfigError


def driver_from_conf(conf: cfg.ConfigOpts) -> NetworkDriver:
    """[network] driver's implementation; ConfigError when its options cannot work."""
    if conf.network.driver == "none":
        return NoNetwork()
    return BuiltinNetwork(settings.from_conf(conf))


def check_network(conf: cfg.ConfigOpts) -> list[Finding]:
    """Errors that must keep the agent from starting: options that cannot work, the bridge's
    name taken by another kind of device, no dnsmasq to run, no NAT interface."""
    if conf.network.driver == "none":
        return [findings.ok("network", "no network for guests ([network] driver = none)")]
    try:
        network = settings.from_conf(conf)
    except ConfigError as exc:
        return [findings.error("network_config", str(exc), exc.option)]
    result: list[Finding] = []
    kind = bridge.device_kind(network.bridge)
    if kind not in (None, "bridge"):
        result.append(
            findings.error(
                "network_bridge_taken",
                f"{network.bridge} is a {kind or 'network'} device, not a bridge: choose "
                "another name",
                "[network] bridge",
            )
        )
    if shutil.which("dnsmasq") is None:
        result.append(
            findings.error(
                "network_no_dnsmasq",
                "dnsmasq is not installed (Debian: apt-get install dnsmasq-base); it hands "
                "guests their addresses",
                "[network] driver",
            )
        )
    if network.nat_interface and bridge.device_kind(network.nat_interface) is None:
        result.append(
            findings.error(
                "network_no_nat_interface",
                f"no network device named {network.nat_interface}",
                "[network] nat_interface",
            )
        )
    if not result:
        result.append(
            findings.ok(
                "network",
                f"built-in network {network.network} on bridge {network.bridge} "
                f"(gateway {network.gateway})",
            )
        )
    return result
