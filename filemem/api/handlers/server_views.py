"""The JSON views of a server: nova's v2.1 summary/detail, and the agent's view."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

from fastapi import Request

from filemem.api.links import bookmark, resource_links
from filemem.common import states
from filemem.db.models import Image, Instance


def iso(value: dt.datetime | None) -> str | None:
    """nova's created/updated format: seconds and a Z."""
    return None if value is None else f"{value.isoformat(timespec='seconds')}Z"


def host_id(project_id: str, host: str | None) -> str:
    """nova's hostId: sha224(project_id + host), empty while unscheduled."""
    if not host:
        return ""
    return hashlib.sha224((project_id + host).encode("utf-8")).hexdigest()


def status(instance: Instance) -> str:
    return states.status_of(instance.vm_state, instance.task_state)


def summary(request: Request, instance: Instance) -> dict[str, Any]:
    return {
        "id": instance.uuid,
        "name": instance.display_name,
        "links": resource_links(request, "servers", instance.uuid),
    }


def _fault(instance: Instance) -> dict[str, Any] | None:
    if instance.vm_state not in (states.ERROR, states.DELETED) or not instance.fault_message:
        return None
    return {
        "message": instance.fault_message,
        "code": instance.fault_code or 500,
        "created": iso(instance.updated_at),
    }


def detail(request: Request, instance: Instance) -> dict[str, Any]:
    launched = instance.launched_at.isoformat() if instance.launched_at else None
    view: dict[str, Any] = {
        **summary(request, instance),
        "status": status(instance),
        "tenant_id": instance.project_id,
        "user_id": instance.user_id,
        "metadata": dict(instance.metadata_ or {}),
        "hostId": host_id(instance.project_id, instance.host),
        "image": {"id": instance.image_id, "links": bookmark(request, "images", instance.image_id)},
        "flavor": {
            "id": instance.flavor_id,
            "links": bookmark(request, "flavors", instance.flavor_id),
        },
        "created": iso(instance.created_at),
        "updated": iso(instance.updated_at or instance.created_at),
        "addresses": {},
        "accessIPv4": "",
        "accessIPv6": "",
        "key_name": None,
        "config_drive": "",
        "progress": 0,
        "security_groups": [],
        "os-extended-volumes:volumes_attached": [],
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": "nova",
        "OS-EXT-SRV-ATTR:host": instance.host,
        "OS-EXT-SRV-ATTR:hypervisor_hostname": instance.host,
        "OS-EXT-SRV-ATTR:instance_name": f"instance-{instance.uuid}",
        "OS-EXT-STS:vm_state": instance.vm_state,
        "OS-EXT-STS:task_state": instance.task_state,
        "OS-EXT-STS:power_state": instance.power_state,
        "OS-SRV-USG:launched_at": launched,
        "OS-SRV-USG:terminated_at": None,
    }
    fault = _fault(instance)
    if fault is not None:
        view["fault"] = fault
    if instance.memory_usage and instance.host:
        # An admin attribute like OS-EXT-SRV-ATTR:*: where the guest's memory lives right now.
        view["filemem:memory_usage"] = dict(instance.memory_usage)
    return view


def _image_view(image_id: str, image: Image | None) -> dict[str, Any]:
    if image is None:
        return {
            "id": image_id,
            "kind": None,
            "kernel_path": None,
            "initrd_path": None,
            "cmdline": "",
            "disk_path": None,
            "disk_format": None,
        }
    return {
        "id": image.id,
        "kind": image.kind,
        "kernel_path": image.kernel_path,
        "initrd_path": image.initrd_path,
        "cmdline": image.cmdline,
        "disk_path": image.disk_path,
        "disk_format": image.disk_format,
    }


def agent_view(
    instance: Instance, image: Image | None, migration_uuids: Sequence[str] = ()
) -> dict[str, Any]:
    """What an agent needs to converge one instance (docs/control-plane.md, Agent API).

    `console_requested_at` is the stored time in full (isoformat, naive UTC): the agent echoes
    it when it answers, and the API clears the request only when it still is that time.
    `migration_uuids`: the consumers of the instance's unfinished moves, which the agent's
    allocation heal must keep.
    """
    requested = instance.console_requested_at
    return {
        "uuid": instance.uuid,
        "name": instance.display_name,
        "host": instance.host,
        "vm_state": instance.vm_state,
        "task_state": instance.task_state,
        "power_state": instance.power_state,
        "flavor": {
            "id": instance.flavor_id,
            "name": instance.flavor_name,
            "vcpus": instance.vcpus,
            "memory_mb": instance.memory_mb,
            "root_gb": instance.root_gb,
            "extra_specs": dict(instance.extra_specs or {}),
        },
        "image": _image_view(instance.image_id, image),
        "deleted_requested": instance.deleted_requested,
        "project_id": instance.project_id,
        "user_id": instance.user_id,
        "crash_dump_requested": bool(instance.crash_dump_requested),
        "console_requested_at": requested.isoformat() if requested is not None else None,
        "migration_uuids": list(migration_uuids),
    }
