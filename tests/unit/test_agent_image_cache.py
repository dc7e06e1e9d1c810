"""The agent and its image cache: a corrupt download ends the build in ERROR with the reason,
and the loop's cleanup keeps the bases its instances use."""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from filemem.common.guests import Image
from filemem.compute.image_cache import BASE_DIR, ImageCache
from filemem.compute.reconcile.loop import ReconcileLoop
from tests.unit import test_agent_fake_driver as fake_agent
from tests.unit.test_agent_fake_driver import Agent, building

agent = fake_agent.agent
IMAGE_ID = "0b7a6f52-2ad7-4bb4-8a55-64c7a6bd8f11"


@pytest.fixture
def data(tmp_path: Path) -> bytes:
    disk = tmp_path / "src.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "1M"], check=True)
    return disk.read_bytes()


def uploaded(data: bytes) -> Image:
    return Image(
        kind="disk",
        source="upload",
        image_id=IMAGE_ID,
        size=len(data),
        os_hash_algo="sha512",
        os_hash_value=hashlib.sha512(data).hexdigest(),
    )


def with_cache(agent: Agent, body: bytes, min_age: float = 0.0) -> ReconcileLoop:
    @contextlib.contextmanager
    def fetch(image_id: str) -> Iterator[Iterable[bytes]]:
        yield [body]

    state = Path(agent.host.conf.state_path)
    cache = ImageCache(state / BASE_DIR, fetch, min_age=min_age)
    return ReconcileLoop(agent.host, agent.api, wait=0, images=cache)


def test_the_loop_keeps_the_bases_its_instances_use(agent: Agent, data: bytes) -> None:
    """(The boot itself needs real libvirt: tests/functional/test_image_upload_boot.py.)"""
    loop = with_cache(agent, data)
    want = building(image=uploaded(data))
    assert loop.images is not None
    base = loop.images.ensure(want.image)
    assert base.parent == Path(agent.host.conf.state_path).resolve() / BASE_DIR
    loop.clean_image_cache([want], force=True)
    assert base.read_bytes() == data  # in use
    loop.clean_image_cache([], force=True)
    assert not base.exists()


def test_a_corrupt_download_ends_the_build_in_error(agent: Agent, data: bytes) -> None:
    loop = with_cache(agent, data[:-1] + b"\x01")
    want = building(image=uploaded(data))
    agent.schedule(want)
    loop.run_once(None)
    report = agent.api.last(want.uuid)
    assert report["vm_state"] == "error", report
    assert "the download is corrupt" in report["fault_message"]
    assert agent.driver.list_guests() == []
    assert list((Path(agent.host.conf.state_path) / BASE_DIR).iterdir()) == []
