"""The agent's side of the agent API (/filemem/v1): register, watch assigned instances, report
state, console output and instance-action events."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

import httpx

from filemem.common import agent_wire
from filemem.common.nova_errors import fault_message
from filemem.compute.reconcile.plan import DesiredInstance
from filemem.exceptions import FilememError

LOG = logging.getLogger(__name__)


class ApiUnavailable(FilememError):
    """The API could not be reached or answered with a server error; the agent retries."""


class ApiMisrouted(ApiUnavailable):
    """The API answered 404 without the gone marker: a route it does not serve (an API of
    another version, a wrong endpoint prefix, a proxy), never a deleted instance. Retried
    with backoff like an outage: the step is not done until an API has taken it."""


class ApiRefused(FilememError):
    """The API answered 4xx: a bug or a misconfiguration (token), not worth retrying blindly."""

    def __init__(self, message: str, status: int = 400, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason or message


def _reason(response: httpx.Response) -> str:
    """The message of a nova-style error body, else the start of the body."""
    return fault_message(response.text) or response.text[:500]


class RegistrationRefused(ApiRefused):
    """The API refused this host's registration (409): the agent must not start. The seed's
    rule: a file-backed host in an aggregate whose ram_allocation_ratio is not 1.0."""


class AgentApi(Protocol):
    """What the reconcile loop needs of the API; AgentApiClient is the HTTP implementation.

    Every method raises ApiUnavailable (transient: retried with backoff) or ApiRefused.
    "Gone" is only ever the API's 404 with the X-Filemem-Gone marker; a 404 without it is
    ApiMisrouted (an ApiUnavailable), never taken for a deleted instance.
    """

    def register(
        self,
        host: str,
        provider_uuid: str,
        file_backed_memory_mb: int,
        details: Mapping[str, Any] | None = None,
    ) -> float | None:
        """Create or refresh this host's service record (also the heartbeat); the MEMORY_MB
        allocation ratio the host's aggregates give it (None: its own). `details` are the
        optional ServiceUpdate fields (capabilities, version, migration_address,
        store_free_mb). Raises RegistrationRefused when the API will not have this host run as
        configured."""

    def watch(self, host: str, since: int | None, wait: float) -> tuple[int, list[DesiredInstance]]:
        """The full desired set for `host` once something changed after `since` (or `wait` s)."""

    def report(self, uuid: str, fields: dict[str, Any]) -> None:
        """Observed state of one instance (vm_state, power_state, task_state, fault)."""

    def report_memory_usage(self, host: str, guests: dict[str, dict[str, Any]]) -> None:
        """Every running guest's working set on `host`, by instance uuid."""

    def gone(self, uuid: str) -> None:
        """The instance's guest is destroyed here: the API may drop its allocation and row."""

    def console(self, uuid: str, output: str, requested_at: str) -> None:
        """The console log's tail, answering the request the agent view showed at
        `requested_at`; nothing happens when the instance is gone."""

    def event(self, uuid: str, body: dict[str, Any]) -> None:
        """One finished step as an instance-action event: {"event", "result" ("Success" or
        "Error"), "start_time", "finish_time" (ISO 8601), "traceback"}; the API attaches it to
        the instance's newest action, or drops it when there is none."""

    def migration_event(self, migration_uuid: str, body: dict[str, Any]) -> None:
        """One live migration event ({"event": prepared | started | progress | completed |
        failed | cancelled, "reason", "memory_*_bytes"}); nothing happens for a migration the
        API does not know (404 with the X-Filemem-Gone marker)."""


class AgentApiClient:
    """AgentApi over HTTP; every call raises ApiUnavailable or ApiRefused with the API's reason."""

    def __init__(self, endpoint: str, token: str, timeout: float = 10.0) -> None:
        # `endpoint` may list several filemem-api URLs, comma-separated: when the current one
        # is unreachable the call moves on to the next ([DEFAULT] api_endpoint's list form).
        self.endpoints = [url.strip().rstrip("/") for url in endpoint.split(",") if url.strip()]
        if not self.endpoints:
            self.endpoints = [endpoint.strip()]
        self._clients = [
            httpx.Client(base_url=url, headers={"X-Auth-Token": token}, timeout=timeout)
            for url in self.endpoints
        ]
        self.endpoint = self.endpoints[0]
        self._http = self._clients[0]

    def close(self) -> None:
        for client in {id(c): c for c in (*self._clients, self._http)}.values():
            client.close()

    def _fail_over(self, failed: httpx.Client) -> None:
        """Make the endpoint after `failed` the current one (unless another thread already
        moved on from it)."""
        if self._http is not failed or failed not in self._clients:
            return
        index = (self._clients.index(failed) + 1) % len(self._clients)
        self.endpoint, self._http = self.endpoints[index], self._clients[index]
        LOG.warning("filemem API: moving on to %s", self.endpoint)

    def _call(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        timeout: float | None = None,
        missing_ok: bool = False,
    ) -> Any:
        for attempt in range(len(self._clients)):
            http = self._http
            try:
                response = http.request(
                    method,
                    path,
                    json=json,
                    params=params,
                    timeout=timeout if timeout is not None else http.timeout,
                )
                break
            except httpx.HTTPError as exc:
                if attempt == len(self._clients) - 1:
                    where = ", ".join(self.endpoints)
                    raise ApiUnavailable(f"filemem API at {where} unreachable: {exc}") from exc
                LOG.warning("filemem API at %s unreachable: %s", self.endpoint, exc)
                self._fail_over(http)
        if response.status_code >= 500:
            raise ApiUnavailable(
                f"{method} {path}: API error {response.status_code}: {response.text[:500]}"
            )
        if response.status_code == 404:
            gone = agent_wire.is_gone(response.status_code, response.headers)
            if gone and (method in ("PATCH", "POST") or missing_ok):
                return None  # the instance is gone already: nothing left to report
            if not gone:
                raise ApiMisrouted(
                    f"{method} {path}: 404 without the {agent_wire.GONE_HEADER} marker from "
                    f"{self.endpoint}: the API does not serve this route (another version, or "
                    f"a wrong endpoint); retrying: {response.text[:300]}"
                )
        if response.status_code >= 400:
            raise ApiRefused(
                f"{method} {path}: {response.status_code}: {response.text[:500]}",
                response.status_code,
                _reason(response),
            )
        return response.json() if response.content else None

    def register(
        self,
        host: str,
        provider_uuid: str,
        file_backed_memory_mb: int,
        details: Mapping[str, Any] | None = None,
    ) -> float | None:
        body = {
            **(details or {}),
            "binary": "filemem-compute",
            "provider_uuid": provider_uuid,
            "file_backed": file_backed_memory_mb > 0,
            "file_backed_memory_mb": file_backed_memory_mb,
        }
        path = f"/filemem/v1/services/{host}"
        try:
            try:
                answer = self._call("PUT", path, json=body)
            except ApiRefused as exc:
                if exc.status not in (400, 422) or not details:
                    raise
                # An API older than the live migration fields refuses them: register without.
                LOG.warning("the API does not take %s yet: %s", sorted(details), exc.reason)
                for key in details:
                    body.pop(key, None)
                answer = self._call("PUT", path, json=body)
        except ApiRefused as exc:
            if exc.status == 409:
                raise RegistrationRefused(exc.reason) from exc
            raise
        ratio = (answer or {}).get("ram_allocation_ratio")
        return float(ratio) if ratio is not None else None

    def watch(self, host: str, since: int | None, wait: float) -> tuple[int, list[DesiredInstance]]:
        """The full desired set for `host`, once something changed after `since` (or `wait`)."""
        params: dict[str, Any] = {"wait": int(wait)}
        if since is not None:
            params["since"] = since
        body = self._call(
            "GET", f"/filemem/v1/hosts/{host}/instances", params=params, timeout=wait + 10
        )
        return int(body["cursor"]), [DesiredInstance.from_api(i) for i in body["instances"]]

    def report_memory_usage(self, host: str, guests: dict[str, dict[str, Any]]) -> None:
        """Every running guest's working set, for the admin view of its server."""
        self._call("PUT", f"/filemem/v1/hosts/{host}/memory-usage", json={"guests": guests})

    def report(self, uuid: str, fields: dict[str, Any]) -> None:
        self._call("PATCH", f"/filemem/v1/instances/{uuid}", json=fields)

    def gone(self, uuid: str) -> None:
        self._call("POST", f"/filemem/v1/instances/{uuid}/gone")

    def console(self, uuid: str, output: str, requested_at: str) -> None:
        self._call(
            "PUT",
            f"/filemem/v1/instances/{uuid}/console",
            json={"output": output, "requested_at": requested_at},
            missing_ok=True,
        )

    def event(self, uuid: str, body: dict[str, Any]) -> None:
        self._call("POST", f"/filemem/v1/instances/{uuid}/events", json=body)

    def migration_event(self, migration_uuid: str, body: dict[str, Any]) -> None:
        self._call("POST", f"/filemem/v1/migrations/{migration_uuid}/events", json=body)
