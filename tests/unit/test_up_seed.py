"""`filemem up` seeds the catalogue: flavors always, the test guest only if it is built."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from devtools.test_image import TestImage
from filemem.cmd import up


class FakeApi:
    """The two ComputeApi calls _seed makes, recorded."""

    def __init__(self) -> None:
        self.posted: list[tuple[str, Any]] = []

    def call(self, method: str, path: str, body: Any = None) -> Any:
        if method == "GET":
            return {"flavors": []}
        self.posted.append((path, body))
        return {}

    def images(self, method: str, path: str = "", body: Any = None) -> Any:
        if method == "GET":
            return {"images": []}
        self.posted.append(("/image", body))
        return {}


def test_an_unbuilt_test_image_is_not_registered_and_the_log_says_how_to_build_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(up, "TEST_IMAGE_DIR", tmp_path)
    api = FakeApi()
    with caplog.at_level(logging.INFO, logger="filemem.up"):
        up._seed(api)  # type: ignore[arg-type]
    assert [path for path, _ in api.posted] == ["/flavors"] * len(up.DEFAULT_FLAVORS)
    assert "scripts/build-test-image" in caplog.text
    assert str(tmp_path) in caplog.text


def test_a_built_test_image_is_registered_with_the_builders_boot_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "vmlinuz").write_bytes(b"k")
    (tmp_path / "initrd.img").write_bytes(b"i")
    monkeypatch.setattr(up, "TEST_IMAGE_DIR", tmp_path)
    api = FakeApi()
    up._seed(api)  # type: ignore[arg-type]
    built = TestImage(kernel=tmp_path / "vmlinuz", initrd=tmp_path / "initrd.img")
    assert api.posted[-1] == (
        "/image",
        {
            "name": "filemem-test",
            "kernel_path": str(built.kernel),
            "initrd_path": str(built.initrd),
            "cmdline": built.cmdline(),
        },
    )
