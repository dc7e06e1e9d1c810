"""Metrics through prometheus-client: the textfile and the HTTP endpoint serve one snapshot."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest

from filemem.compute.metrics import GuestMetric, Metrics, MetricsSnapshot, parse
from filemem.conf.compute import metrics_listen
from filemem.exceptions import ConfigError

SNAPSHOT = MetricsSnapshot(
    placement_up=True,
    memory_mb_total=2048,
    memory_mb_reserved=0,
    memory_mb_used=256,
    capacity_reduced=False,
    store_size_bytes=10 * 2**30,
    guests=[
        GuestMetric(
            "u-1",
            "instance-1",
            allocated_bytes=2**28,
            nominal_bytes=2**28,
            resident_bytes=2**27,
            major_faults=12,
        )
    ],
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_the_textfile_holds_known_values_and_leaves_unknown_ones_out(tmp_path: Path) -> None:
    metrics = Metrics(tmp_path / "metrics.prom")
    metrics.publish(SNAPSHOT)
    samples = parse(metrics.textfile.read_text())
    assert samples["filemem_memory_mb_total"] == 2048
    assert samples["filemem_memory_capacity_reduced"] == 0
    labels = '{name="instance-1",uuid="u-1"}'
    assert samples[f"filemem_guest_memory_resident_bytes{labels}"] == 2**27
    assert samples[f"filemem_guest_major_faults_total{labels}"] == 12
    assert "filemem_backing_store_free_bytes" not in samples  # unknown: no sample, not 0
    assert oct(metrics.textfile.stat().st_mode & 0o777) == "0o644"


def test_the_http_endpoint_serves_the_latest_snapshot(tmp_path: Path) -> None:
    metrics = Metrics(tmp_path / "metrics.prom")
    port = free_port()
    metrics.serve("127.0.0.1", port)
    metrics.publish(SNAPSHOT)
    metrics.publish(MetricsSnapshot(placement_up=False))
    body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    samples = parse(body)
    assert samples["filemem_placement_up"] == 0
    assert "filemem_memory_mb_total" not in samples


@pytest.mark.parametrize("value", ["9478", "host:", "host:http", "127.0.0.1:70000"])
def test_a_bad_listen_address_is_refused_naming_the_option(value: str) -> None:
    with pytest.raises(ConfigError, match=r"\[DEFAULT\] metrics_listen"):
        metrics_listen(value)


def test_listen_addresses_parse() -> None:
    assert metrics_listen("") is None
    assert metrics_listen("0.0.0.0:9478") == ("0.0.0.0", 9478)
    assert metrics_listen("[::1]:9478") == ("::1", 9478)
