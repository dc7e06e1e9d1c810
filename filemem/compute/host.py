"""One host's compute service parts (driver, Placement client, tracker, manager) from one config."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from oslo_config import cfg

from filemem.common.findings import Severity
from filemem.compute import metrics
from filemem.compute.host_check import HostReport, driver_settings
from filemem.compute.manager import ComputeManager
from filemem.compute.network.base import NetworkDriver, NoNetwork
from filemem.compute.network.setup import driver_from_conf
from filemem.compute.tracker import ResourceTracker
from filemem.placement import client_from_conf
from filemem.placement.client import PlacementClient
from filemem.virt.driver import HypervisorDriver
from filemem.virt.libvirt.driver import LibvirtDriver

LOG = logging.getLogger(__name__)


@dataclass
class ComputeHost:
    """Everything one host's compute service is made of, built from one configuration."""

    conf: cfg.ConfigOpts
    driver: HypervisorDriver
    client: PlacementClient
    tracker: ResourceTracker
    manager: ComputeManager
    metrics: metrics.Metrics
    network: NetworkDriver = field(default_factory=NoNetwork)

    @classmethod
    def from_conf(
        cls,
        conf: cfg.ConfigOpts,
        *,
        driver: HypervisorDriver | None = None,
        client: PlacementClient | None = None,
        store_dir: Path | None = None,
        network: NetworkDriver | None = None,
    ) -> ComputeHost:
        """Opens nothing yet: libvirt and Placement are first contacted when used, the
        network ([network] driver) when a guest first needs it."""
        driver = driver or LibvirtDriver(driver_settings(conf))
        client = client or client_from_conf(conf)
        tracker = ResourceTracker(conf, driver, client, store_dir=store_dir)
        manager = ComputeManager(driver, client, tracker.provider_uuid, Path(conf.state_path))
        return cls(
            conf,
            driver,
            client,
            tracker,
            manager,
            metrics.Metrics(metrics_path(conf)),
            network or driver_from_conf(conf),
        )

    def metrics_path(self) -> Path:
        return self.metrics.textfile


def metrics_path(conf: cfg.ConfigOpts) -> Path:
    """[DEFAULT] metrics_file, or metrics.prom under state_path."""
    configured: str = conf.metrics_file
    return Path(configured) if configured else Path(conf.state_path) / metrics.DEFAULT_FILE_NAME


def startup_errors(report: HostReport) -> list[str]:
    """The lines to print when the host must not run the agent; warnings are logged."""
    for finding in report.findings:
        if finding.severity == Severity.WARNING:
            LOG.warning("startup check: %s", finding.message)
    return [
        finding.message
        if not finding.option or finding.option in finding.message
        else f"{finding.option}: {finding.message}"
        for finding in report.findings
        if finding.severity == Severity.ERROR
    ]
