"""The JSON views of a server: nova's v2.1 summary/detail, and the agent's view."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi import Request

from filemem.api import policy
from filemem.api.context import get_context
from filemem.api.handlers import network_views
from filemem.api.links import bookmark, resource_links
from filemem.api.microversion import at_least
from filemem.api.policies import servers as policies
from filemem.common import states
from filemem.common.agent_contract.answers import (
    AgentInstance,
    FlavorView,
    ImageView,
    IncomingMigrationView,
    LiveMigrationView,
    NicView,
)
from filemem.common.aggregates import DEFAULT_ZONE
from filemem.common.instance_metadata import sanitize_hostname
from filemem.common.resources import IMAGE_MEM_PAGE_SIZE
from filemem.db import aggregates as db_aggregates
from filemem.db import api as db_api
from filemem.db.models import Image, Instance, Service


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


# nova's views/servers.py: progress only in these statuses, a fault only in the last two.
PROGRESS_STATUSES = ("ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE", "MIGRATING")
FAULT_STATUSES = ("ERROR", "DELETED")


def _fault(instance: Instance) -> dict[str, Any] | None:
    if instance.vm_state not in (states.ERROR, states.DELETED) or not instance.fault_message:
        return None
    return {
        "message": instance.fault_message,
        "code": instance.fault_code or 500,
        "created": iso(instance.updated_at),
    }


def hostname(instance: Instance) -> str:
    """nova's sanitize_hostname of the display name, set at create; servers created before
    the hostname column follow their display name."""
    return instance.hostname or sanitize_hostname(instance.display_name, f"Server-{instance.uuid}")


def _base(request: Request, instance: Instance) -> dict[str, Any]:
    """What every full view holds: nova's show() with every optional part off."""
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
        "addresses": network_views.addresses(request, instance),
        "accessIPv4": "",
        "accessIPv6": "",
        "OS-DCF:diskConfig": "MANUAL",
    }
    fault = _fault(instance)
    if fault is not None and view["status"] in FAULT_STATUSES:
        view["fault"] = fault
    if view["status"] in PROGRESS_STATUSES:
        view["progress"] = 0
    return view


def _extended_attributes(request: Request, instance: Instance) -> dict[str, Any]:
    """OS-EXT-SRV-ATTR:* (the caller is the admin); the ec2-era ones from 2.3."""
    attrs: dict[str, Any] = {
        "OS-EXT-SRV-ATTR:host": instance.host,
        "OS-EXT-SRV-ATTR:hypervisor_hostname": instance.host,
        "OS-EXT-SRV-ATTR:instance_name": f"instance-{instance.uuid}",
    }
    if at_least(request, "2.3"):
        attrs.update(
            {
                "OS-EXT-SRV-ATTR:hostname": hostname(instance),
                "OS-EXT-SRV-ATTR:kernel_id": "",
                "OS-EXT-SRV-ATTR:launch_index": instance.launch_index,
                "OS-EXT-SRV-ATTR:ramdisk_id": "",
                "OS-EXT-SRV-ATTR:reservation_id": instance.reservation_id,
                # filemem boots kernels and disks without a root device name.
                "OS-EXT-SRV-ATTR:root_device_name": None,
                "OS-EXT-SRV-ATTR:user_data": instance.user_data,
            }
        )
    return attrs


def _versioned(request: Request, instance: Instance, host_status: str | None) -> dict[str, Any]:
    """The fields later microversions add: locked (2.9), host_status (2.16), description
    (2.19), tags (2.26); host_status is left out when None (nova's update view)."""
    fields: dict[str, Any] = {}
    if at_least(request, "2.9"):
        fields["locked"] = instance.locked_by is not None
    if at_least(request, "2.16") and host_status is not None:
        fields["host_status"] = host_status
    if at_least(request, "2.19"):
        fields["description"] = instance.description
    if at_least(request, "2.26"):
        fields["tags"] = list(instance.tags or [])
    return fields


def host_status_of(service: Service | None, down_after: dt.timedelta) -> str:
    """nova's get_instance_host_status: MAINTENANCE when disabled, UP or UNKNOWN by
    heartbeat, "" (NONE) when the host has no service; filemem has no forced_down (DOWN)."""
    if service is None:
        return ""
    if service.disabled:
        return "MAINTENANCE"
    return "UP" if db_api.is_up(service, down_after) else "UNKNOWN"


def host_statuses(request: Request, instances: Iterable[Instance]) -> dict[str, str]:
    """host -> host_status for the hosts of `instances`, in one read."""
    ctx = get_context(request)
    hosts = {instance.host for instance in instances if instance.host}
    if not hosts:
        return {}
    with ctx.database.reader() as session:
        services = {s.host: s for s in db_api.list_services(session) if s.host in hosts}
    return {host: host_status_of(services.get(host), ctx.down_after) for host in hosts}


def availability_zone(request: Request, instance: Instance) -> str:
    """nova's get_instance_availability_zone: the zone of the host it is on, else the zone
    it asked for, else ""; the hosts' zones are read once per request."""
    if not instance.host:
        return instance.availability_zone or ""
    zones: dict[str, str] | None = getattr(request.state, "host_zones", None)
    if zones is None:
        with get_context(request).database.reader() as session:
            zones = db_aggregates.host_zones(session)
        request.state.host_zones = zones
    return zones.get(instance.host, DEFAULT_ZONE)


def _target(instance: Instance) -> dict[str, str]:
    return {"project_id": instance.project_id, "user_id": instance.user_id}


def _admin_view(request: Request, instance: Instance) -> bool:
    """os-extended-server-attributes (admin by default): the host and other admin fields."""
    return policy.allowed(request, policies.EXTENDED_ATTRIBUTES, _target(instance))


def detail(
    request: Request, instance: Instance, statuses: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """GET /servers/{id} and /servers/detail; `statuses` (host_statuses) saves a read per
    server in a list."""
    launched = instance.launched_at.isoformat() if instance.launched_at else None
    if statuses is None and at_least(request, "2.16"):
        statuses = host_statuses(request, [instance])
    view: dict[str, Any] = {
        **_base(request, instance),
        "key_name": instance.key_name,
        # nova's string: "True" or "".
        "config_drive": "True" if instance.config_drive else "",
        "security_groups": [],
        "os-extended-volumes:volumes_attached": [],
        "OS-EXT-AZ:availability_zone": availability_zone(request, instance),
        **(_extended_attributes(request, instance) if _admin_view(request, instance) else {}),
        "OS-EXT-STS:vm_state": instance.vm_state,
        "OS-EXT-STS:task_state": instance.task_state,
        "OS-EXT-STS:power_state": instance.power_state,
        "OS-SRV-USG:launched_at": launched,
        "OS-SRV-USG:terminated_at": None,
    }
    host_status: str | None = (statuses or {}).get(instance.host or "", "")
    if not policy.allowed(request, policies.SHOW_HOST_STATUS, _target(instance)):
        host_status = None
    view.update(_versioned(request, instance, host_status))
    if instance.memory_usage and instance.host and _admin_view(request, instance):
        # An admin attribute like OS-EXT-SRV-ATTR:*: where the guest's memory lives right now.
        view["filemem:memory_usage"] = dict(instance.memory_usage)
    return view


def update_view(request: Request, instance: Instance) -> dict[str, Any]:
    """PUT /servers/{id}'s answer below 2.75: nova's show() without AZ, key_name, config
    drive, security groups, OS-EXT-*, OS-SRV-USG, volumes and host_status."""
    return {**_base(request, instance), **_versioned(request, instance, None)}


def _image_view(image_id: str, image: Image | None) -> ImageView:
    if image is None:
        return ImageView(id=image_id, kind=None)
    # Validated, not constructed: the catalogue's columns are plain strings, the contract
    # names the kinds and formats an agent boots.
    return ImageView.model_validate(
        {
            "id": image.id,
            "kind": image.kind,
            "kernel_path": image.kernel_path,
            "initrd_path": image.initrd_path,
            "cmdline": image.cmdline,
            "disk_path": image.disk_path,
            "disk_format": image.disk_format,
            "name": image.name,
            "mem_page_size": image.property_value(IMAGE_MEM_PAGE_SIZE),
            "source": image.source,
            "size": image.size,
            "os_hash_algo": image.os_hash_algo,
            "os_hash_value": image.os_hash_value,
        }
    )


def agent_view(
    instance: Instance,
    image: Image | None,
    migration_uuids: Sequence[str] = (),
    live_migration: LiveMigrationView | None = None,
    incoming_migration: IncomingMigrationView | None = None,
    nics: Sequence[NicView] = (),
) -> AgentInstance:
    """What an agent needs to converge one instance (filemem.common.agent_contract).

    `migration_uuids`: the consumers of the instance's unfinished moves, which the agent's
    allocation heal must keep; `live_migration` / `incoming_migration`: the live migration
    contract's objects, which only the host's watch fills in; `nics`: the instance's ports
    (network_views.nic_view), in the guest's order.
    """
    requested = instance.console_requested_at
    return AgentInstance(
        uuid=instance.uuid,
        name=instance.display_name,
        host=instance.host,
        vm_state=instance.vm_state,
        task_state=instance.task_state,
        power_state=instance.power_state,
        flavor=FlavorView(
            id=instance.flavor_id,
            name=instance.flavor_name,
            vcpus=instance.vcpus,
            memory_mb=instance.memory_mb,
            root_gb=instance.root_gb,
            extra_specs=dict(instance.extra_specs or {}),
        ),
        image=_image_view(instance.image_id, image),
        deleted_requested=instance.deleted_requested,
        project_id=instance.project_id,
        user_id=instance.user_id,
        crash_dump_requested=bool(instance.crash_dump_requested),
        console_requested_at=requested.isoformat() if requested is not None else None,
        migration_uuids=list(migration_uuids),
        live_migration=live_migration,
        incoming_migration=incoming_migration,
        nics=list(nics),
        config_drive=bool(instance.config_drive),
        hostname=hostname(instance),
        user_data=instance.user_data,
        key_name=instance.key_name,
        public_keys=(
            {instance.key_name: instance.key_data}
            if instance.key_name and instance.key_data
            else {}
        ),
        availability_zone=instance.availability_zone,
        launch_index=instance.launch_index or 0,
        metadata={str(k): str(v) for k, v in (instance.metadata_ or {}).items()},
        snapshot_image_id=instance.snapshot_image_id,
    )
