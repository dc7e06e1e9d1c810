"""A real guest boots with a config drive and reads nova's metadata from it."""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from devtools.test_image import CONFIG_DRIVE_PREFIX, TestImage
from filemem.common.guests import Flavor, Image
from filemem.placement.embedded import EmbeddedPlacement
from tests.agent_stack import IGNORE_TIMEOUT_WARNING, build_stack, close_stack
from tests.functional.conftest import DriverFactory, virsh, wait_for_console

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHv1cf9eTCiLTlHf6Ps2Ul4c0PcTOt0yFbDh2dtUqDUc cd"
USER_DATA = "#cloud-config filemem says hello"


def console_value(log: Path, tag: str) -> str:
    """The rest of the console line that starts with CONFIG_DRIVE_PREFIX-tag."""
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith(f"{CONFIG_DRIVE_PREFIX}-{tag} "):
            return line.split(" ", 1)[1].strip()
    raise AssertionError(f"no {CONFIG_DRIVE_PREFIX}-{tag} line on the console")


def cdroms(uuid: str) -> list[ET.Element]:
    root = ET.fromstring(virsh("dumpxml", "--inactive", f"instance-{uuid}"))
    return [d for d in root.findall("devices/disk") if d.get("device") == "cdrom"]


@pytest.mark.filterwarnings(IGNORE_TIMEOUT_WARNING)
def test_guest_reads_its_metadata_from_the_config_drive(
    make_driver: DriverFactory,
    state_path: Path,
    test_image: TestImage,
    tmp_path: Path,
    embedded_placement: EmbeddedPlacement,
) -> None:
    """API row -> agent view -> ISO in the instance directory -> IDE CD-ROM -> the guest's
    /init mounts /dev/sr0 and prints the label, meta_data.json and user_data it finds."""
    driver = make_driver(shutdown_timeout=1)
    image = {
        "name": "test",
        "kind": "kernel",
        "kernel_path": str(test_image.kernel),
        "initrd_path": str(test_image.initrd),
        "cmdline": test_image.cmdline(config_drive=True),
    }
    stack = build_stack(tmp_path, state_path, driver, embedded_placement.client(), image)
    try:
        uuid = stack.boot(
            display_name="Web Server_1",
            hostname="web-server-1",
            config_drive=True,
            user_data=base64.b64encode(USER_DATA.encode()).decode(),
            key_name="k1",
            key_data=KEY,
            metadata_={"role": "web"},
        )
        log = driver.console_log(uuid)
        wait_for_console(log, f"{CONFIG_DRIVE_PREFIX}-USER")
        assert f"{CONFIG_DRIVE_PREFIX}-ERROR" not in log.read_text(errors="replace")
        assert console_value(log, "LABEL") == "config-2"
        meta = json.loads(console_value(log, "META"))
        assert (meta["uuid"], meta["hostname"], meta["name"]) == (
            uuid,
            "web-server-1",
            "Web Server_1",
        )
        assert meta["public_keys"] == {"k1": KEY} and meta["meta"] == {"role": "web"}
        assert console_value(log, "USER") == USER_DATA

        drive = driver.config_drive_path(uuid)
        assert drive.stat().st_mode & 0o077 == 0  # the user data is no other user's to read
        [cdrom] = cdroms(uuid)
        assert cdrom.find("readonly") is not None
        assert cdrom.find("source").get("file") == str(drive)  # type: ignore[union-attr]
        # A resize defines the guest again: the drive stays attached.
        kernel = Image(
            kind="kernel",
            kernel=test_image.kernel,
            initrd=test_image.initrd,
            cmdline=image["cmdline"],
        )
        driver.resize(uuid, Flavor("bigger", 1, 320), kernel, start=False)
        assert len(cdroms(uuid)) == 1
    finally:
        close_stack(stack)
