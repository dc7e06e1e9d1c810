"""The `filemem` command against the real libvirtd: host check verdicts and guest views."""

from __future__ import annotations

import json
import subprocess
import uuid as uuidlib
from pathlib import Path

import pytest

from devtools.test_image import TestImage
from filemem.common.guests import Flavor, Image
from tests.functional.conftest import REPO, DriverFactory, wait_for_console

FILEMEM = str(REPO / ".venv" / "bin" / "filemem")


def write_conf(state_path: Path, **options: str) -> Path:
    defaults = {
        "ram_allocation_ratio": "1.0",
        "reserved_host_memory_mb": "0",
        "virt_type": "qemu",
        "file_backed_memory": "2048",
    }
    defaults.update(options)
    libvirt_keys = {"virt_type", "file_backed_memory"}
    lines = ["[DEFAULT]", f"state_path = {state_path}"]
    lines += [f"{k} = {v}" for k, v in defaults.items() if k not in libvirt_keys and v != ""]
    lines += ["[libvirt]"] + [f"{k} = {v}" for k, v in defaults.items() if k in libvirt_keys]
    path = state_path / "filemem.conf"
    path.write_text("\n".join(lines) + "\n")
    return path


def filemem(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [FILEMEM, "--config-file", str(config), *args], capture_output=True, text=True, timeout=300
    )


def test_host_check_passes_on_a_good_host(libvirtd: None, state_path: Path) -> None:
    result = filemem(write_conf(state_path), "host", "check", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["result"] in ("ok", "warning")
    assert report["store"]["path"] == "/var/lib/libvirt/qemu/ram"
    assert report["libvirt_version"].startswith("9.")


@pytest.mark.parametrize(
    ("options", "option_named"),
    [
        ({"ram_allocation_ratio": ""}, "[DEFAULT] ram_allocation_ratio"),
        ({"ram_allocation_ratio": "1.5"}, "[DEFAULT] ram_allocation_ratio"),
        ({"reserved_host_memory_mb": "4096"}, "[DEFAULT] reserved_host_memory_mb"),
        ({"virt_type": "lxc"}, "[libvirt] virt_type"),
        ({"file_backed_memory": "999999999"}, "[libvirt] file_backed_memory"),
    ],
)
def test_host_check_explains_a_misconfigured_host(
    libvirtd: None,
    state_path: Path,
    options: dict[str, str],
    option_named: str,
) -> None:
    config = write_conf(state_path, **options)
    result = filemem(config, "host", "check")
    assert result.returncode == 1, result.stdout
    assert "ERROR" in result.stdout and option_named in result.stdout
    assert "cannot run filemem-compute" in result.stdout
    as_json = json.loads(filemem(config, "host", "check", "--json").stdout)
    assert option_named in [f["option"] for f in as_json["findings"] if f["severity"] == "error"]


def test_invalid_option_value_is_refused_naming_it(state_path: Path) -> None:
    result = filemem(write_conf(state_path, file_backed_memory="-1"), "host", "check")
    assert result.returncode == 1
    assert "[libvirt] file_backed_memory" in result.stderr


def test_guest_commands_are_read_only_views_of_api_guests(
    make_driver: DriverFactory,
    state_path: Path,
    test_image: TestImage,
) -> None:
    config = write_conf(state_path)
    driver = make_driver(file_backed_memory_mb=2048)  # the same state_path as the config
    guest = driver.spawn(
        f"cli-{state_path.name}",
        str(uuidlib.uuid4()),
        Flavor("t", 1, 128),
        Image(
            kind="kernel",
            kernel=test_image.kernel,
            initrd=test_image.initrd,
            cmdline=test_image.cmdline(),
        ),
    )
    wait_for_console(driver.console_log(guest.uuid), "FILEMEM-READY")
    listed = json.loads(filemem(config, "guest", "list", "--json").stdout)
    [mine] = [g for g in listed if g["uuid"] == guest.uuid]
    assert mine["power_state"] == "RUNNING" and mine["file_backed"] is True
    assert mine["memory_file"]["nominal_bytes"] == 128 * 1024 * 1024
    assert mine["memory_file"]["path"].startswith("/var/lib/libvirt/qemu/ram/")
    # Preallocated (immediate) and just booted: the file is in the store and in RAM.
    working = mine["working_set"]
    assert working["store_bytes"] == 128 * 1024 * 1024
    assert 0 < working["resident_bytes"] <= 128 * 1024 * 1024
    assert working["major_faults"] is not None
    table = filemem(config, "guest", "list").stdout
    assert "in RAM %" in table and guest.name in table
    assert "FILEMEM-READY" in filemem(config, "guest", "console", guest.name).stdout
    # The API and its agents are the only creators of guests: no boot/delete beside them.
    for verb in ("boot", "delete", "stop"):
        refused = filemem(config, "guest", verb, guest.name)
        assert refused.returncode == 2 and "invalid choice" in refused.stderr
    missing = filemem(config, "guest", "console", "no-such-guest")
    assert missing.returncode == 1 and "no filemem guest" in missing.stderr
