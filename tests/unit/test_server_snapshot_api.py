"""createImage and createBackup through the API app, with the agent's real client and the fake
driver: the queued image, the task, the Location header, and what a failed upload leaves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from filemem.db import api as db_api
from filemem.placement.embedded import EmbeddedPlacement
from filemem.virt.fake import FakeDriver
from tests.agent_stack import IGNORE_TIMEOUT_WARNING, Stack, build_stack, close_stack

pytestmark = pytest.mark.filterwarnings(IGNORE_TIMEOUT_WARNING)


def make_stack(tmp_path: Path, placement: EmbeddedPlacement, kind: str) -> Stack[FakeDriver]:
    state = tmp_path / "state"
    driver = FakeDriver(state_path=state, backing_dir=tmp_path / "ram", file_backed_memory_mb=2048)
    if kind == "disk":
        image = {"name": "img", "kind": "disk", "disk_path": "/d1.qcow2", "disk_format": "qcow2"}
    else:
        image = {"name": "img", "kind": "kernel", "kernel_path": "/k1"}
    return build_stack(tmp_path, state, driver, placement.client(), image)


@pytest.fixture
def disk_stack(
    tmp_path: Path, embedded_placement: EmbeddedPlacement
) -> Iterator[Stack[FakeDriver]]:
    built = make_stack(tmp_path, embedded_placement, "disk")
    yield built
    close_stack(built)


def test_create_image_queues_a_private_image_and_a_failed_upload_deletes_it(
    disk_stack: Stack[FakeDriver],
) -> None:
    stack = disk_stack
    uuid = stack.boot()
    answer = stack.http.post(
        f"/v2.1/servers/{uuid}/action",
        json={"createImage": {"name": "snap", "metadata": {"purpose": "test"}}},
    )
    assert answer.status_code == 202, answer.text
    image_id = answer.headers["Location"].rsplit("/", 1)[1]
    assert answer.headers["Location"].endswith(f"/image/v2/images/{image_id}")
    row = stack.instance(uuid)
    assert (row.task_state, row.snapshot_image_id) == ("image_snapshot", image_id)
    shown = stack.http.get(f"/image/v2/images/{image_id}").json()
    assert (shown["status"], shown["visibility"], shown["owner"]) == ("queued", "private", "p1")
    assert (shown["image_type"], shown["instance_uuid"], shown["purpose"]) == (
        "snapshot",
        uuid,
        "test",
    )
    again = stack.http.post(f"/v2.1/servers/{uuid}/action", json={"createImage": {"name": "x"}})
    assert again.status_code == 409 and "image_snapshot" in again.text

    # This API stores no images: the agent's upload is refused, the task ends, the guest runs
    # on, and the snapshot that never became active is deleted, as nova does.
    stack.converge()
    row = stack.instance(uuid)
    assert (row.vm_state, row.task_state, row.snapshot_image_id) == ("active", None, None)
    with stack.database.reader() as session:
        assert db_api.get_image(session, image_id) is None
    assert stack.last_event(uuid)[:3] == ("createImage", "compute_snapshot_instance", "Error")


def test_backup_takes_a_type_and_a_rotation(disk_stack: Stack[FakeDriver]) -> None:
    uuid = disk_stack.boot()
    bad = disk_stack.http.post(
        f"/v2.1/servers/{uuid}/action", json={"createBackup": {"name": "b", "rotation": 1}}
    )
    assert bad.status_code == 400 and "backup_type" in bad.text
    answer = disk_stack.http.post(
        f"/v2.1/servers/{uuid}/action",
        json={"createBackup": {"name": "b", "backup_type": "daily", "rotation": 2}},
    )
    assert answer.status_code == 202, answer.text
    image_id = answer.headers["Location"].rsplit("/", 1)[1]
    shown = disk_stack.http.get(f"/image/v2/images/{image_id}").json()
    assert (shown["image_type"], shown["backup_type"], shown["rotation"]) == (
        "backup",
        "daily",
        "2",
    )


def test_a_kernel_boot_has_no_disk_to_snapshot(
    tmp_path: Path, embedded_placement: EmbeddedPlacement
) -> None:
    stack = make_stack(tmp_path, embedded_placement, "kernel")
    try:
        uuid = stack.boot()
        answer = stack.http.post(
            f"/v2.1/servers/{uuid}/action", json={"createImage": {"name": "snap"}}
        )
        assert answer.status_code == 409 and "no disk to snapshot" in answer.text
        assert stack.instance(uuid).task_state is None
    finally:
        close_stack(stack)
