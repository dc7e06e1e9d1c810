"""Who may call which agent route: the admin anything, a host credential its own host only.

Every route of the route table (filemem/api/routes.py) names its authorization in
`Route.authz`, a FastAPI dependency run after authentication and before the handler:

- `authorize_host`: routes with a `{host}` path parameter (PUT /filemem/v1/services/{host},
  GET /filemem/v1/hosts/{host}/instances, PUT .../memory-usage): the path host must be the
  caller's host.
- `authorize_instance`: routes with a `{server_id}` path parameter (PATCH
  /filemem/v1/instances/{uuid}, .../gone, .../console, .../events): the instance's host must be
  the caller's host, or the caller's host must be the source or destination of a move of the
  instance still in progress (migrations.status in IN_PROGRESS).
- `authorize_instance_event` (POST .../events, records only): as `authorize_instance`, and
  also the source or destination of the instance's latest move after it ended.
- `authorize_migration`: routes with a `{migration_uuid}` path parameter (POST
  /filemem/v1/migrations/{migration_uuid}/events): the caller's host must be the migration's
  source or destination.
- `authorize_image_download`: GET /image/v2/images/{image_id}/file: a host credential only
  for an image an instance on (or moving to or from) its host boots from.
- `admin_only`: operator routes under /filemem/v1 (host credentials).
- A route that names none gets `deny_host_credentials`: the whole Compute API (/v2.1), the
  image API, the Placement proxy. A route added later is thus closed to host credentials until
  it names one of the functions above; handlers that find the host in a body rather than the
  path call `require_host` / `require_instance_host` / `require_migration_host` themselves.

Unknown instances and migrations pass through, so the handler answers as it does for the admin
(404, or 204 for an instance already gone). Each refusal is a 403 in nova's error shape naming
the caller's host.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated

from fastapi import Path, Request
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from filemem.api.context import get_context
from filemem.api.errors import Forbidden
from filemem.api.identity import Caller, get_caller
from filemem.api.schemas.common import HostName, is_uuid
from filemem.db import api as db_api
from filemem.db import images as images_db
from filemem.db import server_migrations as migrations_db
from filemem.db.models import Instance, Migration

# -- policy (pure) ------------------------------------------------------------------------------


def may_act_for_host(caller: Caller, host: str) -> bool:
    """The admin for every host; a host credential for its own host; nobody else."""
    if caller.is_admin:
        return True
    return caller.kind == "host_credential" and caller.host is not None and caller.host == host


def may_act_for_instance(caller: Caller, instance_host: str | None, moving: Iterable[str]) -> bool:
    """For the instance's host, or a host an unfinished move of it comes from or goes to."""
    if caller.is_admin:
        return True
    return any(may_act_for_host(caller, h) for h in (instance_host, *moving) if h is not None)


def refusal(caller: Caller, what: str) -> str:
    message = f"Policy doesn't allow {what} to be performed"
    if caller.kind == "host_credential":
        return f"{message} by the credential of host {caller.host}."
    return f"{message}."


# -- checks inside handlers ---------------------------------------------------------------------


def require_host(request: Request, host: str) -> None:
    """403 unless the caller may act for `host`."""
    caller = get_caller(request)
    if not may_act_for_host(caller, host):
        raise Forbidden(refusal(caller, f"filemem:agent on host {host}"))


def _move_ends(instance_uuid: str) -> Select[str | None, str | None]:
    return select(Migration.source_compute, Migration.dest_compute).where(
        Migration.instance_uuid == instance_uuid
    )


def _hosts(session: Session, query: Select[str | None, str | None]) -> list[str]:
    return [host for row in session.execute(query) for host in row if host is not None]


def moving_hosts(session: Session, instance_uuid: str) -> list[str]:
    """Sources and destinations of the instance's moves still in progress."""
    query = _move_ends(instance_uuid).where(Migration.status.in_(migrations_db.IN_PROGRESS))
    return _hosts(session, query)


def last_move_hosts(session: Session, instance_uuid: str) -> list[str]:
    """Source and destination of the instance's latest move, finished or not."""
    return _hosts(session, _move_ends(instance_uuid).order_by(Migration.id.desc()).limit(1))


def require_instance_host(
    request: Request, session: Session, instance: Instance, *, records_only: bool = False
) -> None:
    """403 unless the caller may act for the instance's host (or one it is moving between).

    `records_only` (action events, which change no state): also the hosts of its latest move
    once it ended, since the source's own event of a live migration comes after the
    destination may already have reported it completed."""
    caller = get_caller(request)
    if caller.is_admin:
        return
    hosts = moving_hosts(session, instance.uuid)
    if records_only:
        hosts += last_move_hosts(session, instance.uuid)
    if not may_act_for_instance(caller, instance.host, hosts):
        raise Forbidden(refusal(caller, f"filemem:agent on instance {instance.uuid}"))


def require_migration_host(request: Request, migration: Migration) -> None:
    """403 unless the caller may act for the migration's source or destination host."""
    caller = get_caller(request)
    hosts = (migration.source_compute, migration.dest_compute)
    if not any(may_act_for_host(caller, h) for h in hosts if h is not None):
        raise Forbidden(refusal(caller, f"filemem:agent on migration {migration.uuid}"))


# -- route dependencies (Route.authz) -----------------------------------------------------------


def authorize_host(request: Request, host: Annotated[HostName, Path()]) -> None:
    require_host(request, host)


def authorize_instance(request: Request, server_id: Annotated[str, Path()]) -> None:
    _authorize_instance(request, server_id, records_only=False)


def authorize_instance_event(request: Request, server_id: Annotated[str, Path()]) -> None:
    _authorize_instance(request, server_id, records_only=True)


def _authorize_instance(request: Request, server_id: str, *, records_only: bool) -> None:
    if get_caller(request).is_admin or not is_uuid(server_id):
        return
    with get_context(request).database.reader() as session:
        instance = db_api.get_instance(session, server_id)
        if instance is not None:
            require_instance_host(request, session, instance, records_only=records_only)


def authorize_migration(request: Request, migration_uuid: Annotated[str, Path()]) -> None:
    if get_caller(request).is_admin:
        return
    with get_context(request).database.reader() as session:
        query = select(Migration).where(Migration.uuid == migration_uuid)
        migration = session.scalars(query).first()
        if migration is not None:
            require_migration_host(request, migration)


def authorize_image_download(request: Request, image_id: Annotated[str, Path()]) -> None:
    """GET /image/v2/images/{image_id}/file: other callers as the image's visibility says (the
    handler); a host credential only while an instance on its host, or moving to or from it,
    boots from the image."""
    _require_image_use(request, image_id, images_db.used_on_host, "download of image")


def authorize_image_upload(request: Request, image_id: Annotated[str, Path()]) -> None:
    """PUT /image/v2/images/{image_id}/file: other callers as the image's owner says (the
    handler); a host credential only for the snapshot an instance on its host is writing."""
    _require_image_use(request, image_id, images_db.snapshot_on_host, "upload to image")


def _require_image_use(
    request: Request, image_id: str, on_host: Callable[[Session, str, str], bool], what: str
) -> None:
    """A host credential passes only when `on_host` says its host has a use for the image."""
    caller = get_caller(request)
    if caller.kind != "host_credential":
        return
    allowed = False
    if caller.host is not None and is_uuid(image_id):
        with get_context(request).database.reader() as session:
            allowed = on_host(session, image_id, caller.host)
    if not allowed:
        raise Forbidden(refusal(caller, f"{what} {image_id}"))


def admin_only(request: Request) -> None:
    caller = get_caller(request)
    if not caller.is_admin:
        raise Forbidden(refusal(caller, f"{request.method} {request.url.path}"))


def deny_host_credentials(request: Request) -> None:
    """Every route but the agent's: closed to host credentials, open to the rest as before."""
    caller = get_caller(request)
    if caller.kind == "host_credential":
        raise Forbidden(refusal(caller, f"{request.method} {request.url.path}"))
