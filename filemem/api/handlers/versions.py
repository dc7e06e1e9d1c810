"""Version documents: the Compute API (GET /, /v2.1) and identity v3 (for the openstack CLI)."""

from __future__ import annotations

from typing import Any

from fastapi import Request

from filemem.api import microversion
from filemem.api.identity import get_caller
from filemem.api.legacy_v2 import is_legacy
from filemem.api.links import base_url

MIN_VERSION = str(microversion.MIN_VERSION)
MAX_VERSION = str(microversion.MAX_VERSION)
_UPDATED = "2013-07-23T11:33:21Z"
_LEGACY_UPDATED = "2011-01-21T11:33:21Z"
_IDENTITY_UPDATED = "2020-04-07T00:00:00Z"


def _compute_version(base: str) -> dict[str, Any]:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": MAX_VERSION,
        "min_version": MIN_VERSION,
        "updated": _UPDATED,
        "links": [{"rel": "self", "href": f"{base}/v2.1/"}],
    }


def _legacy_version(base: str) -> dict[str, Any]:
    """nova's v2.0: the same API at microversion 2.1 (filemem/api/legacy_v2.py)."""
    return {
        "id": "v2.0",
        "status": "SUPPORTED",
        "version": "",
        "min_version": "",
        "updated": _LEGACY_UPDATED,
        "links": [{"rel": "self", "href": f"{base}/v2/"}],
    }


def list_versions(request: Request) -> dict[str, Any]:
    """GET /: the API versions, v2.0 first as nova lists them."""
    base = base_url(request)
    return {"versions": [_legacy_version(base), _compute_version(base)]}


def show_version(request: Request) -> dict[str, Any]:
    """GET /v2.1 (or /v2): the version document, which clients read for microversions."""
    base = base_url(request)
    legacy = is_legacy(request.scope)
    version = _legacy_version(base) if legacy else _compute_version(base)
    version["links"].append(
        {"rel": "describedby", "type": "text/html", "href": "https://docs.openstack.org/"}
    )
    version["media-types"] = [
        {
            "base": "application/json",
            "type": f"application/vnd.openstack.compute+json;version={'2' if legacy else '2.1'}",
        }
    ]
    return {"version": version}


def _identity_version(base: str) -> dict[str, Any]:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": _IDENTITY_UPDATED,
        "links": [{"rel": "self", "href": f"{base}/identity/v3/"}],
        "media-types": [
            {"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}
        ],
    }


def identity_versions(request: Request) -> dict[str, Any]:
    """GET /identity: an identity v3 version list, so clients accept admin_token auth.

    There is no Keystone: this only lets the openstack CLI's version check pass when a
    clouds.yaml points identity_endpoint_override here.
    """
    return {"versions": {"values": [_identity_version(base_url(request))]}}


def identity_v3(request: Request) -> dict[str, Any]:
    """GET /identity/v3: the identity v3 version document."""
    return {"version": _identity_version(base_url(request))}


def _project(request: Request, project_id: str | None = None) -> dict[str, Any]:
    """The caller's project, or the one named: filemem has no project registry (projects come
    with the caller's credential), so any project id names a project, as nova takes them."""
    project_id = project_id or get_caller(request).project_id
    base = base_url(request)
    return {
        "id": project_id,
        "name": project_id,
        "domain_id": "default",
        "description": "a project of filemem's callers (filemem keeps no project registry)",
        "enabled": True,
        "is_domain": False,
        "parent_id": "default",
        "tags": [],
        "links": {"self": f"{base}/identity/v3/projects/{project_id}"},
    }


def show_project(request: Request, project_id: str) -> dict[str, Any]:
    """GET /identity/v3/projects/{id}: any project, so clients that look a project up
    (`openstack quota show P`, `usage show --project P`, `flavor set --project P`) find it."""
    return {"project": _project(request, project_id)}


def list_projects(request: Request, name: str | None = None) -> dict[str, Any]:
    """GET /identity/v3/projects[?name=]: the caller's project, or the one named."""
    project = _project(request, name)
    projects = [project]
    return {
        "projects": projects,
        "links": {"self": project["links"]["self"], "next": None, "previous": None},
    }
