"""Unit tests for the test guest's /init script and the kernel command lines that drive it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devtools import memcheck as mc
from devtools import test_image as ti
from devtools.image_inputs import TestImageError, kernel_modules


def test_init_script_speaks_the_protocol() -> None:
    assert ti.INIT_SCRIPT.startswith("#!/bin/busybox sh\n")
    assert f"echo {ti.READY_LINE}\n" in ti.INIT_SCRIPT
    assert "filemem.touch_mb=" in ti.INIT_SCRIPT
    assert "filemem.poweroff=" in ti.INIT_SCRIPT
    assert "filemem.workload=" in ti.INIT_SCRIPT
    for arg, option in [
        ("mem_mb", "--mem-mb"),
        ("hot_mb", "--hot-mb"),
        ("verify_every", "--verify-every"),
        ("seed", "--seed"),
        ("pass_delay_ms", "--pass-delay-ms"),
    ]:
        assert f'filemem.{arg}=*) memcheck_args="$memcheck_args {option}=' in ti.INIT_SCRIPT


def test_init_runs_memcheck_as_a_child_and_reports_its_exit() -> None:
    # PID 1 must outlive memcheck: an exec would make its exit a kernel panic.
    assert "exec /bin/memcheck" not in ti.INIT_SCRIPT
    run = ti.INIT_SCRIPT.index("/bin/memcheck $memcheck_args\n")
    assert ti.INIT_SCRIPT.index('echo "FILEMEM-MEMCHECK-EXIT status=$?"') > run
    assert ti.INIT_SCRIPT.index("while :; do sleep 3600; done") > run


def test_init_script_parses() -> None:
    subprocess.run(["sh", "-n"], input=ti.INIT_SCRIPT.encode(), check=True)


def test_cmdline_defaults() -> None:
    image = ti.TestImage(kernel=Path("/k"), initrd=Path("/i"))
    args = image.cmdline().split()
    assert args[0] == "console=ttyS0"
    assert "filemem.touch_mb=0" in args
    assert not any(a.startswith("filemem.poweroff") for a in args)
    assert image.ready_line == "FILEMEM-READY"


def test_cmdline_touch_and_poweroff() -> None:
    image = ti.TestImage(kernel=Path("/k"), initrd=Path("/i"))
    args = image.cmdline(touch_mb=64, poweroff=True).split()
    assert "filemem.touch_mb=64" in args
    assert "filemem.poweroff=1" in args
    assert "panic=-1" in args
    assert image.touched_line(64) == "FILEMEM-TOUCHED 64"


def test_cmdline_rejects_negative_touch() -> None:
    with pytest.raises(ValueError):
        ti.TestImage(kernel=Path("/k"), initrd=Path("/i")).cmdline(touch_mb=-1)


IMAGE = ti.TestImage(kernel=Path("/k"), initrd=Path("/i"))


def test_memcheck_cmdline() -> None:
    args = IMAGE.memcheck_cmdline(mem_mb=64, hot_mb=16, verify_every=2).split()
    assert args == [
        "console=ttyS0",
        "panic=-1",
        "quiet",
        "loglevel=3",
        "filemem.workload=memcheck",
        "filemem.mem_mb=64",
        "filemem.hot_mb=16",
        "filemem.verify_every=2",
    ]


def test_memcheck_cmdline_with_seed_and_delay() -> None:
    args = IMAGE.memcheck_cmdline(8, 8, 1, seed=2**64 - 1, pass_delay_ms=250).split()
    assert args[-2:] == [f"filemem.seed={2**64 - 1}", "filemem.pass_delay_ms=250"]
    assert "filemem.seed=0" in IMAGE.memcheck_cmdline(8, 1, 1, seed=0).split()


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"mem_mb": 0}, "mem_mb"),
        ({"mem_mb": -5}, "mem_mb"),
        ({"mem_mb": mc.MEMCHECK_MAX_MEM_MB + 1}, "mem_mb"),
        ({"hot_mb": 0}, "hot_mb"),
        ({"hot_mb": 65}, "hot_mb"),
        ({"verify_every": 0}, "verify_every"),
        ({"seed": -1}, "seed"),
        ({"seed": 2**64}, "seed"),
        ({"pass_delay_ms": -1}, "pass_delay_ms"),
        ({"mem_mb": True}, "mem_mb"),
        ({"hot_mb": 1.5}, "hot_mb"),
    ],
)
def test_memcheck_cmdline_rejects(kwargs: dict[str, object], name: str) -> None:
    args: dict[str, object] = {"mem_mb": 64, "hot_mb": 16, "verify_every": 2, **kwargs}
    with pytest.raises(ValueError, match=rf"^{name} "):
        IMAGE.memcheck_cmdline(**args)  # type: ignore[arg-type]


def test_config_drive_is_read_only_when_asked() -> None:
    image = ti.TestImage(kernel=Path("/k"), initrd=Path("/i"))
    assert "filemem.config_drive=1" in image.cmdline(config_drive=True).split()
    assert "filemem.config_drive" not in image.cmdline()
    script = ti.INIT_SCRIPT
    block = script.index('if [ "$config_drive" = 1 ]; then')
    assert script.index(f"echo {ti.READY_LINE}\n") < block  # other tests never wait for it
    for tag in ("LABEL", "META", "USER", "ERROR"):
        assert f"{ti.CONFIG_DRIVE_PREFIX}-{tag} " in script
    assert "mount -t iso9660 -o ro /dev/sr0" in script


def test_initramfs_carries_the_modules_init_loads() -> None:
    modules = {name: name.encode() for name in ti.CONFIG_DRIVE_MODULES}
    entries = ti.initramfs_entries(b"busybox", b"memcheck", modules)
    names = {entry.name for entry in entries}
    assert {f"lib/modules/{name}.ko" for name in ti.CONFIG_DRIVE_MODULES} <= names
    assert "bin/insmod" in names
    assert " ".join(ti.CONFIG_DRIVE_MODULES) in ti.INIT_SCRIPT  # loaded in dependency order


def test_kernel_modules_found_by_name_or_refused(tmp_path: Path) -> None:
    tree = tmp_path / "lib" / "modules" / "6.1.0-x" / "kernel" / "drivers" / "scsi"
    tree.mkdir(parents=True)
    (tree / "sr_mod.ko").write_bytes(b"sr")
    assert kernel_modules(tmp_path, "6.1.0-x", ["sr_mod"]) == {"sr_mod": b"sr"}
    with pytest.raises(TestImageError, match="isofs"):
        kernel_modules(tmp_path, "6.1.0-x", ["sr_mod", "isofs"])
