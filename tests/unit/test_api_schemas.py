"""Request schemas: what is accepted, what is refused, and the nova-style messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from filemem.api.errors import BadRequest, validation_message
from filemem.api.schemas import server_actions as actions
from filemem.api.schemas.flavors import ExtraSpecItem, ExtraSpecsRequest, FlavorCreateRequest
from filemem.api.schemas.images import GlanceImageCreate
from filemem.api.schemas.servers import ServerCreateRequest
from filemem.common.agent_contract.reports import InstanceReport, ServiceUpdate

FLAVOR = {"name": "m1.small", "ram": 512, "vcpus": 1, "disk": 0}
SERVER = {"name": "vm-1", "flavorRef": "1", "imageRef": "3f6b1c1e-0b55-4a53-a7b9-6f1d39b1d9c1"}


def refusal(model: Any, data: Any) -> str:
    with pytest.raises(ValidationError) as refused:
        model.model_validate(data)
    return validation_message(refused.value.errors())


def test_a_stock_flavor_create_body_is_accepted() -> None:
    body = FlavorCreateRequest.model_validate(
        {
            "flavor": {
                **FLAVOR,
                "id": None,
                "OS-FLV-EXT-DATA:ephemeral": 0,
                "swap": 0,
                "rxtx_factor": 1.0,
                "os-flavor-access:is_public": True,
            }
        }
    )
    assert body.flavor.ram == 512 and body.flavor.id is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"ram": 15}, "greater than or equal to 16"),
        ({"ram": 4194305}, "less than or equal to 4194304"),
        ({"vcpus": 0}, "greater than or equal to 1"),
        ({"vcpus": 1025}, "less than or equal to 1024"),
        ({"disk": -1}, "greater than or equal to 0"),
        ({"disk": 65537}, "less than or equal to 65536"),
        ({"ram": "5x12"}, "valid integer"),  # digit strings are nova's, this is not
        ({"vcpus": True}, "valid integer"),
        ({"name": ""}, "at least 1 character"),
        ({"name": "x" * 256}, "at most 255 characters"),
        ({"name": " padded"}, "whitespace"),
        ({"name": "nul\x00"}, "control characters"),
        ({"id": "bad/id"}, "pattern"),
        ({"swap": 512}, "swap"),
        ({"colour": "red"}, "Additional properties are not allowed (flavor.colour"),
    ],
)
def test_bad_flavors_are_refused_with_a_reason(change: dict[str, Any], reason: str) -> None:
    message = refusal(FlavorCreateRequest, {"flavor": {**FLAVOR, **change}})
    assert reason in message, message


def test_server_create_accepts_refs_metadata_and_stock_client_fields() -> None:
    body = ServerCreateRequest.model_validate(
        {
            "server": {
                **SERVER,
                "metadata": {"role": "db"},
                "min_count": 1,
                "max_count": 1,
                "networks": "none",
            }
        }
    )
    assert body.server.metadata == {"role": "db"}


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        ({**SERVER, "name": ""}, "at least 1 character"),
        ({k: v for k, v in SERVER.items() if k != "flavorRef"}, "server.flavorRef: Field required"),
        ({**SERVER, "max_count": 0}, "server.max_count"),
        ({**SERVER, "min_count": 2, "max_count": 1}, "min_count must be <= max_count"),
        ({**SERVER, "metadata": {"k": 1}}, "valid string"),
        ({**SERVER, "metadata": {"a/b": "v"}}, "server.metadata.a/b"),
        ({**SERVER, "user_data": "x"}, "server.user_data: User data needs to be valid base 64"),
        ({**SERVER, "user_data": "QUFB" * 16384}, "server.user_data"),
        ({**SERVER, "config_drive": "maybe"}, "server.config_drive"),
        ({**SERVER, "hostname_typo": "x"}, "Additional properties"),
    ],
)
def test_bad_servers_are_refused(server: dict[str, Any], reason: str) -> None:
    message = refusal(ServerCreateRequest, {"server": server})
    assert reason in message, message


def test_action_payloads() -> None:
    assert actions.parse(actions.Reboot, "reboot", {"type": "HARD"}).type == "HARD"
    assert actions.parse(actions.NoBody, "pause", None) == actions.NoBody()
    assert actions.parse(actions.ConsoleOutput, "os-getConsoleOutput", None).lines() is None
    assert actions.parse(actions.ConsoleOutput, "c", {"length": "5"}).lines() == 5
    assert actions.parse(actions.ConsoleOutput, "c", {"length": -1}).lines() is None
    live = actions.parse(actions.LiveMigrate225, "m", {"host": None, "block_migration": "auto"})
    assert live.block_migration == "auto"


@pytest.mark.parametrize(
    ("model", "name", "value", "reason"),
    [
        (actions.Reboot, "reboot", {"type": "WARM"}, "reboot.type"),
        (actions.Reboot, "reboot", None, "reboot"),
        (actions.NoBody, "pause", {"now": True}, "pause.now was unexpected"),
        (actions.ConsoleOutput, "os-getConsoleOutput", {"length": -2}, "-1 or greater"),
        (actions.ConsoleOutput, "os-getConsoleOutput", {"length": "ten"}, "length"),
        (actions.ResetState, "os-resetState", {"state": "stopped"}, "os-resetState.state"),
        (
            actions.LiveMigrate225,
            "os-migrateLive",
            {"host": None, "block_migration": False, "disk_over_commit": False},
            "disk_over_commit was unexpected",
        ),
        (
            actions.LiveMigrate21,
            "os-migrateLive",
            {"host": None, "block_migration": "auto"},
            "block_migration",
        ),
        (actions.Resize, "resize", {}, "resize.flavorRef"),
        (actions.Rebuild, "rebuild", {"name": "x"}, "rebuild.imageRef"),
    ],
)
def test_bad_action_payloads(model: Any, name: str, value: Any, reason: str) -> None:
    with pytest.raises(BadRequest) as refused:
        actions.parse(model, name, value)
    assert reason in refused.value.message, refused.value.message


def test_extra_specs_keys_values_and_page_sizes() -> None:
    assert ExtraSpecsRequest.model_validate(
        {"extra_specs": {"hw:mem_page_size": "2MB", "quota:cpu_shares": "10"}}
    )
    assert "pattern" in refusal(ExtraSpecsRequest, {"extra_specs": {"bad/key": "x"}})
    assert "at most 255" in refusal(ExtraSpecsRequest, {"extra_specs": {"k": "v" * 256}})
    assert "hw:mem_page_size" in refusal(
        ExtraSpecsRequest, {"extra_specs": {"hw:mem_page_size": "huge"}}
    )
    assert ExtraSpecItem.model_validate({"k": "v"}).root == {"k": "v"}
    assert "at most 1" in refusal(ExtraSpecItem, {"a": "1", "b": "2"})


def test_image_paths_must_be_absolute_without_dotdot(tmp_path: Path) -> None:
    kernel = GlanceImageCreate.model_validate(
        {"name": "k", "kernel_path": "/boot//vmlinuz", "cmdline": "quiet"}
    )
    assert kernel.paths() == {"kernel_path": "/boot/vmlinuz"} and kernel.kind() == "kernel"
    disk = GlanceImageCreate.model_validate({"name": "d", "disk_path": "/d.qcow2"})
    assert (disk.disk_format, disk.kind()) == ("qcow2", "disk")
    assert "absolute" in refusal(GlanceImageCreate, {"name": "k", "kernel_path": "boot/vmlinuz"})
    assert "'..'" in refusal(GlanceImageCreate, {"name": "k", "kernel_path": "/boot/../etc/shadow"})
    # Neither path: an image whose data is uploaded next (glance's create).
    assert GlanceImageCreate.model_validate({"name": "k"}).is_upload()
    assert "either kernel_path" in refusal(
        GlanceImageCreate, {"name": "d", "disk_path": "/d", "kernel_path": "/k"}
    )
    assert "takes no initrd_path" in refusal(
        GlanceImageCreate, {"name": "d", "disk_path": "/d", "initrd_path": "/i"}
    )
    assert "must be aki" in refusal(
        GlanceImageCreate, {"name": "k", "kernel_path": "/k", "disk_format": "raw"}
    )
    assert "container_format" in refusal(
        GlanceImageCreate, {"name": "k", "kernel_path": "/k", "container_format": "ovf"}
    )


def test_agent_bodies() -> None:
    report = InstanceReport.model_validate({"vm_state": "active", "task_state": None})
    assert report.values() == {"vm_state": "active", "task_state": None}
    assert "cannot be null" in refusal(InstanceReport, {"vm_state": None})
    assert "power_state" in refusal(InstanceReport, {"power_state": 2})
    assert "provider_uuid" in refusal(ServiceUpdate, {"provider_uuid": "nope"})
    assert "not a valid UUID" in refusal(ServiceUpdate, {"provider_uuid": "x" * 36})


def test_malformed_json_message() -> None:
    assert (
        validation_message([{"type": "json_invalid", "loc": ("body", 0)}])
        == "Malformed request body"
    )
