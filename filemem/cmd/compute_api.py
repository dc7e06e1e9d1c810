"""HTTP client of the Compute API for the `filemem` CLI (nova JSON shapes)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

from filemem.common.nova_errors import fault_message
from filemem.exceptions import FilememError

CLIENT_FILE = "client.json"
# Where filemem-api serves the Compute API and glance's v2 API.
COMPUTE_PATH = "/v2.1"
IMAGE_PATH = "/image"


class ComputeApiError(FilememError):
    """The API refused a request; the message is the API's own reason."""


def client_settings(state_path: Path, endpoint: str | None, token: str | None) -> tuple[str, str]:
    """--os-endpoint/--os-token, else FILEMEM_ENDPOINT/FILEMEM_TOKEN, else what `filemem up`
    wrote under state_path."""
    endpoint = endpoint or os.environ.get("FILEMEM_ENDPOINT")
    token = static_token(token)
    saved = state_path / CLIENT_FILE
    if (not endpoint or not token) and saved.is_file():
        data = json.loads(saved.read_text())
        endpoint, token = endpoint or data["endpoint"], token or data["token"]
    if not endpoint or not token:
        raise FilememError(
            "no API endpoint/token: pass --os-endpoint and --os-token, set FILEMEM_ENDPOINT and "
            f"FILEMEM_TOKEN, log in through Keystone (--os-cloud, OS_CLOUD or OS_AUTH_URL with "
            f"OS_USERNAME...), or start `filemem up` (it writes {saved})"
        )
    return endpoint.rstrip("/"), token


def static_token(given: str | None) -> str | None:
    """The static token the user gave (--os-token, else FILEMEM_TOKEN), if any."""
    return given or os.environ.get("FILEMEM_TOKEN") or None


def _reason(response: httpx.Response) -> str:
    """The message of a nova-style error body, else the start of the body."""
    return fault_message(response.text) or response.text[:300] or response.reason_phrase


class ComputeApi:
    """The API at `endpoint` (its root), or at the compute and image URLs of a catalog."""

    def __init__(
        self,
        endpoint: str,
        token: str,
        timeout: float = 30.0,
        *,
        compute_url: str | None = None,
        image_url: str | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._image_url = (image_url or f"{endpoint}{IMAGE_PATH}").rstrip("/")
        self._http = httpx.Client(
            base_url=compute_url or f"{endpoint}{COMPUTE_PATH}",
            timeout=timeout,
            headers={
                "X-Auth-Token": token,
                "OpenStack-API-Version": "compute 2.1",
            },
        )

    def call(self, method: str, path: str, body: Any = None, version: str | None = None) -> Any:
        """One request at microversion 2.1, or `version` (e.g. "2.30")."""
        headers = {"OpenStack-API-Version": f"compute {version}"} if version else None
        try:
            response = self._http.request(method, path, json=body, headers=headers)
        except httpx.HTTPError as exc:
            reason = f"cannot reach the filemem API at {self.endpoint}: {exc}"
            raise ComputeApiError(reason) from exc
        if response.status_code >= 400:
            raise ComputeApiError(f"{method} {path}: {response.status_code} {_reason(response)}")
        return response.json() if response.content else None

    def images(self, method: str, path: str = "", body: Any = None) -> Any:
        """The image catalogue through filemem's glance v2 API (nova's proxy is read-only)."""
        return self.call(method, f"{self._image_url}/v2/images{path}", body)

    def find_image(self, ident: str) -> dict[str, Any]:
        """A glance image by id, else by exact name (refusing an ambiguous name)."""
        try:
            found: dict[str, Any] = self.images("GET", f"/{ident}")
            return found
        except ComputeApiError as exc:
            if " 404 " not in str(exc):
                raise
        matches = self.images("GET", f"?{urlencode({'name': ident})}")["images"]
        if len(matches) != 1:
            what = "no" if not matches else f"{len(matches)}"
            raise ComputeApiError(f"{what} images named or with id {ident!r}")
        match: dict[str, Any] = matches[0]
        return match

    def find(self, noun: str, ident: str) -> dict[str, Any]:
        """By id, else by exact name (refusing an ambiguous name, as the openstack CLI does)."""
        plural = {
            "server": "servers",
            "flavor": "flavors",
            "image": "images",
            "hypervisor": "os-hypervisors",
        }[noun]
        try:
            found: dict[str, Any] = self.call("GET", f"/{plural}/{ident}")
            item: dict[str, Any] = found.get(noun, found)
            return item
        except ComputeApiError as exc:
            if " 404 " not in str(exc) and " 400 " not in str(exc):
                raise
        listing = self.call("GET", f"/{plural}/detail" if noun != "image" else f"/{plural}")
        items = listing[plural.replace("os-", "")] if noun != "image" else listing["images"]
        key = "hypervisor_hostname" if noun == "hypervisor" else "name"
        matches = [item for item in items if item.get(key) == ident]
        if len(matches) != 1:
            what = "no" if not matches else f"{len(matches)}"
            raise ComputeApiError(f"{what} {noun}s named or with id {ident!r}")
        match: dict[str, Any] = matches[0]
        return match
