"""The agent's image cache: one download per image however many boots wait for it, a corrupt
or truncated download leaves nothing behind, a full disk is a clear error, and unused bases
go after their minimum age."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from filemem.common.guests import Image
from filemem.compute.image_cache import (
    ImageCache,
    ImageCacheFull,
    ImageDownloadFailed,
    backing_names,
    in_use,
)

IMAGE_ID = "6f0f3b43-79d0-4a54-9a52-3c7d4a1b2c3d"


@pytest.fixture
def data(tmp_path: Path) -> bytes:
    disk = tmp_path / "src.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "1M"], check=True)
    return disk.read_bytes()


def uploaded(data: bytes, **changes: object) -> Image:
    fields: dict[str, object] = {
        "kind": "disk",
        "source": "upload",
        "image_id": IMAGE_ID,
        "size": len(data),
        "os_hash_algo": "sha512",
        "os_hash_value": hashlib.sha512(data).hexdigest(),
        "name": "up",
        **changes,
    }
    return Image(**fields)  # type: ignore[arg-type]


class Server:
    """The image API's download, counting calls; `body` is what it sends."""

    def __init__(self, body: bytes, delay: float = 0.0) -> None:
        self.body = body
        self.delay = delay
        self.calls = 0
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def fetch(self, image_id: str) -> Iterator[Iterable[bytes]]:
        assert image_id == IMAGE_ID
        with self.lock:
            self.calls += 1
        time.sleep(self.delay)  # the first download still running when the others ask
        yield (self.body[i : i + 4096] for i in range(0, len(self.body), 4096))


def test_path_images_pass_through(tmp_path: Path) -> None:
    cache = ImageCache(tmp_path / "_base", Server(b"").fetch)
    image = Image(kind="disk", disk=tmp_path / "d.qcow2")
    assert cache.local(image) is image


def test_concurrent_boots_download_once(tmp_path: Path, data: bytes) -> None:
    server = Server(data, delay=0.3)
    cache = ImageCache(tmp_path / "_base", server.fetch)
    image = uploaded(data)
    results: list[Path | None] = []

    def boot() -> None:
        local = cache.local(image)
        results.append(local.disk)

    threads = [threading.Thread(target=boot) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert server.calls == 1 and cache.downloads == 1
    base = tmp_path / "_base" / hashlib.sha512(data).hexdigest()
    assert results == [base] * 5
    assert base.read_bytes() == data and base.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in base.parent.iterdir()] == [base.name]


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda d: d[:-100], "truncated"),
        (lambda d: d + b"x", "longer than"),
        (lambda d: b"\x01" + d[1:], "corrupt"),
    ],
)
def test_bad_download_leaves_nothing(
    tmp_path: Path, data: bytes, mangle: object, reason: str
) -> None:
    assert callable(mangle)
    cache = ImageCache(tmp_path / "_base", Server(mangle(data)).fetch)
    with pytest.raises(ImageDownloadFailed, match=reason):
        cache.local(uploaded(data))
    assert list((tmp_path / "_base").iterdir()) == []


def test_unsafe_content_is_refused_even_when_the_hash_matches(tmp_path: Path) -> None:
    backed = tmp_path / "b.qcow2"
    make = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", "/etc/hostname"]
    subprocess.run([*make, str(backed)], check=True)
    data = backed.read_bytes()
    cache = ImageCache(tmp_path / "_base", Server(data).fetch)
    with pytest.raises(Exception, match="backing file"):
        cache.local(uploaded(data))
    assert list((tmp_path / "_base").iterdir()) == []


def test_no_hash_is_refused(tmp_path: Path, data: bytes) -> None:
    cache = ImageCache(tmp_path / "_base", Server(data).fetch)
    with pytest.raises(ImageDownloadFailed, match="no sha512 hash"):
        cache.local(uploaded(data, os_hash_algo=None))


def test_full_disk_is_a_clear_error(
    tmp_path: Path, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    cache = ImageCache(tmp_path / "_base", Server(data).fetch)
    with pytest.raises(ImageCacheFull, match="is full"):
        cache.local(uploaded(data))
    assert list((tmp_path / "_base").iterdir()) == []


def test_unused_bases_go_after_their_minimum_age(tmp_path: Path, data: bytes) -> None:
    now = [time.time()]
    cache = ImageCache(tmp_path / "_base", Server(data).fetch, min_age=100, clock=lambda: now[0])
    image = uploaded(data)
    base = cache.ensure(image)
    stale = base.with_name(f"{base.name}.abc.part")
    stale.write_bytes(b"left by a crash")
    names = in_use([image])
    assert names == {base.name}
    now[0] += 1000
    assert cache.clean(names) == [stale.name]  # in use: kept, and marked used now
    assert cache.clean(set()) == []  # unused, but not for 100 s yet
    now[0] += 101
    assert cache.clean(set()) == [base.name]
    assert list(base.parent.iterdir()) == []


def test_overlays_keep_their_base(tmp_path: Path, data: bytes) -> None:
    cache = ImageCache(tmp_path / "_base", Server(data).fetch)
    base = cache.ensure(uploaded(data))
    overlay, other = tmp_path / "disk.qcow2", tmp_path / "other.qcow2"
    make = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"]
    subprocess.run([*make, str(base), str(overlay)], check=True)
    (tmp_path / "elsewhere.qcow2").write_bytes(data)
    subprocess.run([*make, str(tmp_path / "elsewhere.qcow2"), str(other)], check=True)
    names = [overlay, other, tmp_path / "missing.qcow2", base]
    assert backing_names(names, cache.directory) == {base.name}
