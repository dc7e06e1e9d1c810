"""A fake /sys block-device tree, shared by the backing-store unit tests."""

from __future__ import annotations

from pathlib import Path


def make_sysfs(tmp_path: Path) -> Path:
    """A fake /sys: sda (rotational) with partition sda1, nvme0n1 (dax), tmpfs nothing."""
    sysfs = tmp_path / "sys"
    devices = sysfs / "devices" / "pci0000:00"
    sda = devices / "block" / "sda"
    nvme = devices / "block" / "nvme0n1"
    for disk, rotational, dax in ((sda, "1", "0"), (nvme, "0", "1")):
        (disk / "queue").mkdir(parents=True)
        (disk / "queue" / "rotational").write_text(f"{rotational}\n")
        (disk / "queue" / "dax").write_text(f"{dax}\n")
    (sda / "sda1").mkdir()
    (sda / "sda1" / "partition").write_text("1\n")
    links = sysfs / "dev" / "block"
    links.mkdir(parents=True)
    (links / "8:0").symlink_to(sda)
    (links / "8:1").symlink_to(sda / "sda1")
    (links / "259:0").symlink_to(nvme)
    return sysfs
