"""Server actions that change what or where a server runs: rebuild, resize + confirm/revert,
and os-migrateLive (bodies validated per microversion, the move run by the conductor)."""

from __future__ import annotations

from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from filemem.api import microversion, policy, quota
from filemem.api.context import get_context
from filemem.api.errors import BadRequest, Conflict, Forbidden
from filemem.api.handlers import instance_state as actions
from filemem.api.handlers import server_views as views
from filemem.api.handlers.admin_password import admin_password
from filemem.api.handlers.server_create import check_active, check_page_size, image_visible
from filemem.api.handlers.servers import visible_project
from filemem.api.identity import get_caller
from filemem.api.policies import servers as policies
from filemem.api.request_id import request_id
from filemem.api.schemas import server_actions as schemas
from filemem.api.schemas.common import is_flavor_id, is_uuid, ref_id
from filemem.common import states
from filemem.conductor import instance_state as state
from filemem.conductor import live_migration as live
from filemem.conductor import live_migration_checks as checks
from filemem.conductor.resize import (
    InstanceChanged,
    ResizeOverQuota,
    ResizeRefused,
)
from filemem.db import api as db_api
from filemem.db import instance_actions as actions_db
from filemem.db import projects as db_projects
from filemem.db.models import Instance

# From 2.34 nova runs the live migration prechecks after answering 202.
ASYNC_PRECHECKS = "2.34"

REBUILD = state.Transition(
    "rebuild",
    (states.ACTIVE, states.STOPPED, states.ERROR),
    (None,),
    states.REBUILDING,
    actions_db.REBUILD,
)


def rebuild(request: Request, instance: Instance, value: Any) -> JSONResponse:
    """202 with the server (status REBUILD): the agent recreates the guest from the image."""
    body = schemas.parse(schemas.Rebuild, "rebuild", value)
    if body.description is not None and not microversion.at_least(request, "2.19"):
        raise BadRequest(
            "Additional properties are not allowed (rebuild.description was unexpected)"
        )
    ctx = get_context(request)
    image_id = ref_id(body.imageRef)
    with ctx.database.reader() as session:
        image = db_api.get_image(session, image_id) if is_uuid(image_id) else None
    if image is None or not image_visible(image, visible_project(request)):
        raise BadRequest(f"Image {image_id} could not be found.")
    check_active(image)
    check_page_size(instance.flavor_name, dict(instance.extra_specs or {}), image)
    actions.check_lock(request, instance)
    values: dict[str, Any] = {"image_id": image.id}
    if body.name is not None:
        values["display_name"] = body.name
    if body.metadata is not None:
        with ctx.database.reader() as session:
            quota.check_metadata_items(request, session, instance.project_id, body.metadata)
        values["metadata_"] = dict(body.metadata)
    if body.description is not None:
        values["description"] = body.description
    actions.transition(request, instance, REBUILD, values)
    with ctx.database.reader() as session:
        rebuilt = db_api.get_instance(session, instance.uuid)
        assert rebuilt is not None
        # nova's rebuild answer below 2.75: show() without AZ, key, config drive, security
        # groups, OS-EXT-*, OS-SRV-USG, volumes and host_status (Tempest refuses them).
        server = {**views.update_view(request, rebuilt), **admin_password(request, body.adminPass)}
        return JSONResponse({"server": server}, status_code=202)


def _new_flavor(request: Request, instance: Instance, ref: str) -> Any:
    flavor_id = ref_id(ref)
    with get_context(request).database.reader() as session:
        flavor = db_api.get_flavor(session, flavor_id) if is_flavor_id(flavor_id) else None
        project = visible_project(request)
        if flavor is not None and project is not None:
            flavor = flavor if db_projects.has_access(session, flavor, project) else None
    if flavor is None:
        raise BadRequest("Unable to locate requested flavor.")
    if flavor.flavorid == instance.flavor_id:
        raise BadRequest("When resizing, instances must change flavor!")
    if flavor.root_gb < instance.root_gb:
        raise BadRequest(
            f"filemem cannot shrink a root disk: flavor {flavor.name} has root_gb "
            f"{flavor.root_gb}, the server has {instance.root_gb}"
        )
    return flavor


def resize(request: Request, instance: Instance, value: Any) -> Response:
    """202; the server goes RESIZE then VERIFY_RESIZE on its own host."""
    body = schemas.parse(schemas.Resize, "resize", value)
    flavor = _new_flavor(request, instance, body.flavorRef)
    ctx = get_context(request)
    if not ctx.allow_resize_to_same_host:
        raise BadRequest(
            "filemem resizes a server on its own host (it does not move guests between hosts "
            "by cold migration); [DEFAULT] allow_resize_to_same_host = false forbids that"
        )
    actions.check_lock(request, instance)
    limits = quota.check_resize(request, instance, flavor)
    allowed = (states.ACTIVE, states.STOPPED)
    if instance.vm_state not in allowed or instance.task_state is not None:
        raise Conflict(state.refusal("resize", instance.uuid, instance, allowed))
    try:
        ctx.resize_conductor.start(instance, flavor, limits)
    except InstanceChanged as exc:
        raise Conflict(str(exc)) from exc
    except ResizeOverQuota as exc:
        raise Forbidden(str(exc)) from exc
    except ResizeRefused as exc:
        raise BadRequest(str(exc)) from exc
    _record(request, instance, actions_db.RESIZE)
    return Response(status_code=202)


def confirm_resize(request: Request, instance: Instance, value: Any) -> Response:
    """204: the old flavor's allocation is released; the server is ACTIVE (or SHUTOFF)."""
    schemas.parse(schemas.NoBody, "confirmResize", value)
    _expect_resized(request, instance, "confirmResize")
    ctx = get_context(request)
    try:
        ctx.resize_conductor.confirm(instance)
    except ResizeRefused as exc:
        raise Conflict(str(exc)) from exc
    _record(request, instance, actions_db.CONFIRM_RESIZE)
    return Response(status_code=204)


def revert_resize(request: Request, instance: Instance, value: Any) -> Response:
    """202: the agent runs the old flavor again, then its allocation comes back."""
    schemas.parse(schemas.NoBody, "revertResize", value)
    _expect_resized(request, instance, "revertResize")
    ctx = get_context(request)
    try:
        ctx.resize_conductor.revert(instance)
    except ResizeRefused as exc:
        raise Conflict(str(exc)) from exc
    _record(request, instance, actions_db.REVERT_RESIZE)
    return Response(status_code=202)


def _expect_resized(request: Request, instance: Instance, name: str) -> None:
    actions.check_lock(request, instance)
    if instance.vm_state != states.RESIZED or instance.task_state is not None:
        raise Conflict(state.refusal(name, instance.uuid, instance, (states.RESIZED,)))


def _record(request: Request, instance: Instance, action: str) -> None:
    with get_context(request).database.session() as session:
        actions.record(session, request, instance, action)


def live_migrate(request: Request, instance: Instance, value: Any) -> Response:
    """202: the destination is claimed and the agents move the guest. A precheck refusal is a
    400 below 2.34; from 2.34 (nova's async prechecks) a 202 whose action records the Error."""
    if microversion.at_least(request, "2.30"):
        body = schemas.parse(schemas.LiveMigrate230, "os-migrateLive", value)
        force = body.force
        if force and body.host is None:
            raise BadRequest("Can't force to a non-provided destination")
    elif microversion.at_least(request, "2.25"):
        body = schemas.parse(schemas.LiveMigrate225, "os-migrateLive", value)
        force = None
    else:
        body = schemas.parse(schemas.LiveMigrate21, "os-migrateLive", value)
        force = None
    if body.host is not None:
        policy.authorize(request, policies.MIGRATE_LIVE_HOST)
    ctx = get_context(request)
    caller = get_caller(request)
    ask = live.Request(
        host=body.host,
        force=checks.requested_force(microversion.at_least(request, "2.30"), body.host, force),
        block_migration=checks.block_migration_wanted(body.block_migration),
        caller_is_admin=caller.is_admin,
        request_id=request_id(request),
        project_id=instance.project_id,
        user_id=caller.user_id,
    )
    conductor = ctx.live_migration_conductor
    try:
        conductor.start(instance, ask)
    except live.InstanceBusy as exc:
        raise Conflict(str(exc)) from exc
    except live.HostNotFound as exc:
        raise BadRequest(str(exc)) from exc
    except live.LiveMigrationRefused as exc:
        if not microversion.at_least(request, ASYNC_PRECHECKS):
            raise BadRequest(str(exc)) from exc
        conductor.record_refusal(instance, ask, str(exc))
    return Response(status_code=202)
