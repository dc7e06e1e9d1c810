"""POST /servers: one server or several (min_count/max_count), as nova builds them."""

from __future__ import annotations

import secrets
import string
import uuid as uuidlib
from collections.abc import Sequence
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from filemem.api import policy, quota
from filemem.api.context import ApiContext, get_context
from filemem.api.errors import BadRequest
from filemem.api.handlers import server_networks
from filemem.api.handlers import server_views as views
from filemem.api.handlers.admin_password import admin_password
from filemem.api.handlers.availability_zones import available_zones
from filemem.api.handlers.servers import visible_project
from filemem.api.identity import Caller, get_caller
from filemem.api.microversion import at_least
from filemem.api.policies import servers as policies
from filemem.api.request_id import request_id
from filemem.api.schemas.common import is_flavor_id, is_uuid, ref_id
from filemem.api.schemas.servers import ServerCreate, ServerCreateRequest, is_true
from filemem.common import states
from filemem.common.aggregates import ZoneRequest, parse_zone_request
from filemem.common.instance_metadata import sanitize_hostname
from filemem.common.page_size import PageSizeForbidden, requested_page_size
from filemem.common.resources import IMAGE_MEM_PAGE_SIZE, MEM_PAGE_SIZE
from filemem.conductor.network import NetworkDriver, NetworkError, NetworkRequest
from filemem.conductor.network.allocation import allocate_or_fail
from filemem.db import api as db_api
from filemem.db import instance_actions
from filemem.db import keypairs as db_keypairs
from filemem.db import projects as db_projects
from filemem.db.models import Flavor, Image, Instance, KeyPair

# Each server of a request is scheduled within the request, so their number is bounded.
MAX_COUNT = 100
# nova's multi_instance_display_name_template default.
NAME_TEMPLATE = "%(name)s-%(count)d"
_RESERVATION_CHARS = string.digits + string.ascii_lowercase


def unexpected(field: str) -> BadRequest:
    """nova's answer for a field the request's microversion does not have."""
    return BadRequest(f"Additional properties are not allowed ({field} was unexpected)")


def check_version(request: Request, spec: ServerCreate) -> None:
    """What the microversion allows: description from 2.19 (networks: server_networks)."""
    if "description" in spec.model_fields_set and not at_least(request, "2.19"):
        raise unexpected("server.description")


def reservation_id() -> str:
    """nova's generate_uid('r'): "r-" and eight lowercase letters or digits."""
    return "r-" + "".join(secrets.choice(_RESERVATION_CHARS) for _ in range(8))


def _refs(session: Session, spec: ServerCreate, project_id: str | None) -> tuple[Flavor, Image]:
    """The flavor (a private one only for a project with access, or an admin: project_id None)
    and the image; 400 naming the one not found."""
    flavor_id = ref_id(spec.flavorRef)
    flavor = db_api.get_flavor(session, flavor_id) if is_flavor_id(flavor_id) else None
    if flavor is not None and project_id is not None:
        flavor = flavor if db_projects.has_access(session, flavor, project_id) else None
    if flavor is None:
        raise BadRequest(f"Flavor {flavor_id} could not be found. Invalid flavorRef provided.")
    image_id = ref_id(spec.image_ref)
    image = db_api.get_image(session, image_id) if is_uuid(image_id) else None
    if image is None or not image_visible(image, project_id):
        raise BadRequest(f"Image {image_id} could not be found. Invalid imageRef provided.")
    check_active(image)
    check_page_size(flavor.name, flavor.specs(), image)
    return flavor, image


def image_visible(image: Image, project_id: str | None) -> bool:
    """glance's visibility for a boot: private and shared images to their owner project (or
    an admin: project_id None) only."""
    if project_id is None or image.visibility in ("public", "community"):
        return True
    return image.owner == project_id


def check_active(image: Image) -> None:
    """nova's ImageNotActive, a 400: an upload still queued or saving cannot boot."""
    if image.status != "active":
        raise BadRequest(f"Image {image.id} is not active.")


def _zone_request(session: Session, value: str | None) -> ZoneRequest:
    """The zone (and an admin's forced host) asked for: 400 for a zone no enabled host is
    in, or a host that is not registered (nova's messages)."""
    if value is None:
        return ZoneRequest(None)
    wanted = parse_zone_request(value)
    host = wanted.host or wanted.node
    if host is not None and db_api.get_service_by_host(session, host) is None:
        raise BadRequest(f"Compute host {host} could not be found.")
    if wanted.zone is not None and wanted.zone not in available_zones(session):
        raise BadRequest("The requested availability zone is not available")
    return ZoneRequest(wanted.zone, host)


def check_page_size(flavor_name: str, extra_specs: dict[str, Any], image: Image) -> None:
    """400 when the image asks for a page size the flavor does not let it choose (nova's rule)."""
    try:
        requested_page_size(
            extra_specs.get(MEM_PAGE_SIZE),
            image.property_value(IMAGE_MEM_PAGE_SIZE),
            flavor_name=flavor_name,
            image_name=image.name,
        )
    except PageSizeForbidden as exc:
        raise BadRequest(str(exc)) from exc


def _values(
    caller: Caller, spec: ServerCreate, flavor: Flavor, image: Image, index: int, count: int
) -> dict[str, Any]:
    """One row (building, scheduling) with a copy of the flavor, owned by the caller's project
    and user (with Keystone, the token's)."""
    name = NAME_TEMPLATE % {"name": spec.name, "count": index + 1} if count > 1 else spec.name
    uuid = str(uuidlib.uuid4())
    return {
        "uuid": uuid,
        "display_name": name,
        "description": spec.description,
        "project_id": caller.project_id,
        "user_id": caller.user_id,
        "flavor_id": flavor.flavorid,
        "flavor_name": flavor.name,
        "vcpus": flavor.vcpus,
        "memory_mb": flavor.memory_mb,
        "root_gb": flavor.root_gb,
        "extra_specs": flavor.specs(),
        "image_id": image.id,
        "metadata_": dict(spec.metadata or {}),
        "key_name": spec.key_name,
        "user_data": spec.user_data,
        "hostname": sanitize_hostname(name, f"Server-{uuid}"),
        "launch_index": index,
        "host": None,
        "vm_state": states.BUILDING,
        "task_state": states.SCHEDULING,
        "power_state": 0,
        "deleted_requested": False,
    }


def guest_metadata(ctx: ApiContext, spec: ServerCreate, keypair: KeyPair | None) -> dict[str, Any]:
    """The config drive (asked for, or [DEFAULT] force_config_drive) and the key pair's public
    key, copied as nova's instance.key_data: the guest keeps it if the key pair is deleted."""
    asked = spec.config_drive is not None and is_true(spec.config_drive)
    return {
        "config_drive": asked or ctx.force_config_drive,
        "key_data": keypair.public_key if keypair is not None else None,
    }


def new_instances(
    request: Request, spec: ServerCreate, requested: Sequence[NetworkRequest]
) -> list[Instance]:
    """The rows of one request, sharing a reservation id, each with its create action and
    its ports; as many as the project's quota lets through (at least min_count, else 403)."""
    ctx, caller = get_context(request), get_caller(request)
    low, high = spec.counts
    reservation = reservation_id()
    with ctx.database.session() as session:
        keypair = None
        if spec.key_name is not None:
            keypair = db_keypairs.get(session, caller.user_id, spec.key_name)
            if keypair is None:
                raise BadRequest("Invalid key_name provided.")
        flavor, image = _refs(session, spec, visible_project(request))
        zone = _zone_request(session, spec.availability_zone)
        if zone.host is not None:
            policy.authorize(request, policies.CREATE_FORCED_HOST)
        _validate_networks(ctx.network, session, requested, high)
        # Counted in the transaction that inserts, under the project's lock (another API
        # process's create or resize waits for this commit); recheck() is nova's second count.
        db_projects.lock_usage(session, caller.project_id)
        quota.check_metadata_items(request, session, caller.project_id, spec.metadata or {})
        count = quota.allowed_instances(request, session, caller.project_id, flavor, low, high)
        where = {
            "availability_zone": zone.zone,
            "requested_host": zone.host,
            **guest_metadata(get_context(request), spec, keypair),
        }
        instances = []
        for index in range(count):
            values = _values(caller, spec, flavor, image, index, count)
            instance = db_api.create_instance(
                session, {**values, **where, "reservation_id": reservation}
            )
            _record_create(request, session, caller, instance.uuid)
            _allocate(ctx.network, session, instance.uuid, requested)
            instances.append(instance)
    quota.recheck(request, caller.project_id, instances)
    return instances


def _record_create(request: Request, session: Session, caller: Caller, uuid: str) -> None:
    instance_actions.record_action(
        session,
        uuid,
        instance_actions.CREATE,
        request_id=request_id(request),
        project_id=caller.project_id,
        user_id=caller.user_id,
    )


def _validate_networks(
    driver: NetworkDriver, session: Session, requested: Sequence[NetworkRequest], count: int
) -> None:
    try:
        driver.validate(session, requested, count)
    except NetworkError as exc:
        raise server_networks.refusal(exc) from exc


def _allocate(
    driver: NetworkDriver, session: Session, uuid: str, requested: Sequence[NetworkRequest]
) -> None:
    """The instance's ports, in its create transaction (no crash leaves a port without its
    instance); a full network puts it in ERROR, a fixed IP taken meanwhile fails the whole
    request (400, nothing kept)."""
    try:
        allocate_or_fail(driver, session, uuid, requested)
    except NetworkError as exc:
        raise server_networks.refusal(exc) from exc


def create_server(request: Request, body: ServerCreateRequest) -> Response:
    """POST /servers: 202 once the servers are scheduled (or in ERROR when they do not all fit);
    the first server, or {"reservation_id"} when asked for."""
    spec = body.server
    check_version(request, spec)
    if spec.counts[1] > MAX_COUNT:
        raise BadRequest(f"Invalid input for field/attribute max_count: at most {MAX_COUNT}")
    requested = server_networks.requested_networks(request, spec, get_context(request).network)
    instances = new_instances(request, spec, requested)
    # A server that got no address is in ERROR already: it is not scheduled.
    to_build = [i for i in instances if i.task_state == states.SCHEDULING]
    if to_build:
        get_context(request).conductor.build_many(to_build)
    if spec.return_reservation_id is not None and is_true(spec.return_reservation_id):
        return JSONResponse({"reservation_id": instances[0].reservation_id}, status_code=202)
    # nova's answer: no name (Tempest's schema refuses one), adminPass unless turned off.
    server = {
        "id": instances[0].uuid,
        "links": views.summary(request, instances[0])["links"],
        "OS-DCF:diskConfig": "MANUAL",
        "security_groups": [{"name": "default"}],
        **admin_password(request, spec.adminPass),
    }
    return JSONResponse(
        {"server": server}, status_code=202, headers={"Location": server["links"][0]["href"]}
    )
