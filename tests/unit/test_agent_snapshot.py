"""The agent's part of createImage: the disk written next to the guest, uploaded, then gone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from filemem.common.guests import Image, PowerState
from tests.unit.test_agent_fake_driver import Agent, agent, building

__all__ = ["agent"]  # the fixture, used by name

DISK = Image(kind="disk", disk=Path("/images/debian.qcow2"), disk_format="qcow2")
IMAGE_ID = "3f0c5c1e-2b43-4c66-9a2c-0d1c1b9e7a10"


def test_a_snapshot_is_uploaded_and_ends_the_task_with_the_guest_running(agent: Agent) -> None:
    want = building(image=DISK)
    agent.schedule(want)
    agent.converge()
    agent.api.desired[want.uuid] = replace(
        want, vm_state="active", task_state="image_snapshot", snapshot_image_id=IMAGE_ID
    )
    agent.converge()
    assert agent.api.uploads[IMAGE_ID] == f"fake disk of {want.uuid}\n".encode()
    report = agent.api.last(want.uuid)
    assert (report["vm_state"], report["task_state"]) == ("active", None)
    assert agent.driver.get_guest(want.uuid).power_state == PowerState.RUNNING
    # The written file went with the upload: nothing of it is left next to the guest.
    assert not list(agent.driver.instance_dir(want.uuid).glob("snapshot-*"))


def test_a_failed_snapshot_only_ends_the_task(agent: Agent) -> None:
    want = building()  # a kernel boot: no disk to write
    agent.schedule(want)
    agent.converge()
    agent.api.desired[want.uuid] = replace(
        want, vm_state="active", task_state="image_snapshot", snapshot_image_id=IMAGE_ID
    )
    agent.converge()
    assert IMAGE_ID not in agent.api.uploads
    report = agent.api.last(want.uuid)
    assert (report["vm_state"], report["task_state"]) == ("active", None)
    assert agent.driver.get_guest(want.uuid).power_state == PowerState.RUNNING


def test_an_upload_that_fails_leaves_no_file_behind(agent: Agent) -> None:
    want = building(image=DISK)
    agent.schedule(want)
    agent.converge()
    agent.api.desired[want.uuid] = replace(
        want, vm_state="stopped", task_state="image_snapshot", snapshot_image_id=IMAGE_ID
    )
    agent.driver.power_off(want.uuid)

    def refuse(image_id: str, path: Path) -> None:
        from filemem.compute.agent_api import ApiRefused

        raise ApiRefused("PUT: 413: too large", 413)

    agent.api.upload_image = refuse  # type: ignore[method-assign]
    agent.converge()
    assert agent.api.last(want.uuid)["task_state"] is None
    assert not list(agent.driver.instance_dir(want.uuid).glob("snapshot-*"))
