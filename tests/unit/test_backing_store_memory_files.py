"""Unit tests for finding guests' memory files under the backing dir and measuring them."""

from __future__ import annotations

import os
from pathlib import Path

from filemem.backing.store import all_memory_files, guest_memory_dir, guest_memory_file
from filemem.common.resources import MIB


def make_memory_file(directory: Path, name: str = "pc.ram") -> Path:
    """A 64 MiB sparse file with its first 1 MiB written, like a guest that touched 1 MiB."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    with path.open("wb") as f:
        f.truncate(64 * MIB)
        f.write(b"\xa5" * MIB)
        f.flush()
        os.fsync(f.fileno())
    return path


def test_sparse_memory_file_nominal_and_allocated(tmp_path: Path) -> None:
    backing = tmp_path / "ram"
    ram = make_memory_file(backing / "3-instance-00000003")
    assert guest_memory_dir(backing, 3) == backing / "3-instance-00000003"
    usage = guest_memory_file(backing, 3)
    assert usage is not None
    assert usage.path == ram
    assert usage.nominal_bytes == 64 * MIB
    assert MIB <= usage.allocated_bytes < 2 * MIB
    assert usage.allocated_bytes == os.stat(ram).st_blocks * 512


def test_domain_ids_match_whole_numbers_only(tmp_path: Path) -> None:
    backing = tmp_path / "ram"
    make_memory_file(backing / "12-guest")
    assert guest_memory_dir(backing, 1) is None
    assert guest_memory_file(backing, 2) is None
    assert guest_memory_dir(backing, 12) == backing / "12-guest"


def test_missing_backing_dir_and_empty_domain_dir(tmp_path: Path) -> None:
    assert guest_memory_dir(tmp_path / "nope", 1) is None
    assert all_memory_files(tmp_path / "nope") == {}
    (tmp_path / "ram" / "4-starting").mkdir(parents=True)
    assert guest_memory_file(tmp_path / "ram", 4) is None
    assert all_memory_files(tmp_path / "ram") == {}


def test_all_memory_files_keyed_by_domain_id(tmp_path: Path) -> None:
    backing = tmp_path / "ram"
    make_memory_file(backing / "1-a")
    make_memory_file(backing / "7-b")
    (backing / "notes-7").mkdir()
    (backing / "stray.txt").write_text("x")
    usages = all_memory_files(backing)
    assert sorted(usages) == [1, 7]
    assert usages[7].path == backing / "7-b" / "pc.ram"
    assert usages[7].nominal_bytes == 64 * MIB


def test_numa_guest_files_are_summed_under_the_dir(tmp_path: Path) -> None:
    domain = tmp_path / "ram" / "2-numa"
    make_memory_file(domain, "ram-node0")
    make_memory_file(domain, "ram-node1")
    os.link(domain / "ram-node1", domain / "hardlink")  # same blocks, counted once
    usage = guest_memory_file(tmp_path / "ram", 2)
    assert usage is not None
    assert usage.path == domain
    assert usage.nominal_bytes == 128 * MIB
    assert 2 * MIB <= usage.allocated_bytes < 4 * MIB


def test_symlinks_never_lead_outside_the_backing_dir(tmp_path: Path) -> None:
    backing = tmp_path / "ram"
    outside = tmp_path / "elsewhere"
    make_memory_file(outside / "dir")
    backing.mkdir()
    (backing / "5-evil").symlink_to(outside / "dir")
    make_memory_file(backing / "6-ok")
    (backing / "6-ok" / "escape.ram").symlink_to(outside / "dir" / "pc.ram")
    (backing / "8-only-link").mkdir()
    (backing / "8-only-link" / "pc.ram").symlink_to(outside / "dir" / "pc.ram")

    assert guest_memory_dir(backing, 5) is None
    assert guest_memory_file(backing, 5) is None
    assert guest_memory_file(backing, 8) is None
    usage = guest_memory_file(backing, 6)
    assert usage is not None and usage.path == backing / "6-ok" / "pc.ram"
    assert usage.nominal_bytes == 64 * MIB
    assert sorted(all_memory_files(backing)) == [6]


def test_backing_dir_reached_through_a_symlink_still_works(tmp_path: Path) -> None:
    real = tmp_path / "real"
    make_memory_file(real / "9-g")
    (tmp_path / "link").symlink_to(real)
    usage = guest_memory_file(tmp_path / "link", 9)
    assert usage is not None and usage.nominal_bytes == 64 * MIB
