"""The agent's side of the agent API (/filemem/v1): register, watch assigned instances, report
state, console output and instance-action events."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from filemem.common import agent_wire
from filemem.common.agent_contract import (
    CONTRACT_HEADER,
    CONTRACT_VERSION,
    UNVERSIONED,
    header_version,
    mismatch,
)
from filemem.common.agent_contract.answers import RegistrationAnswer, WatchAnswer
from filemem.common.agent_contract.reports import (
    ConsoleOutput,
    InstanceEventReport,
    InstanceReport,
    MemoryUsageReport,
    MigrationEvent,
    ServiceUpdate,
)
from filemem.common.nova_errors import fault_message
from filemem.compute.reconcile.plan import DesiredInstance
from filemem.exceptions import FilememError

LOG = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)
# An image download: no whole-answer timeout (a large image takes its time), but a read that
# waits this long for the next bytes means the API is gone.
DOWNLOAD_TIMEOUT = httpx.Timeout(60.0, connect=10.0)
DOWNLOAD_CHUNK = 1024 * 1024


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


class ContractMismatch(RegistrationRefused):
    """The API speaks another version of the agent contract (filemem.common.agent_contract):
    this agent cannot read it, or it cannot read this agent. Not transient: the agent stops
    rather than act on a misread answer."""


def _answer(model: type[M], body: Any, what: str) -> M:
    """The API's answer read as the contract's `model`; its version checked first."""
    version = body.get("contract_version", UNVERSIONED) if isinstance(body, dict) else UNVERSIONED
    refusal = mismatch(version if type(version) is int else None, "API")
    if refusal is not None:
        raise ContractMismatch(refusal, 406)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise ApiUnavailable(f"{what}: the API's answer is not the agent contract: {exc}") from exc


def _body(model: type[BaseModel], fields: Mapping[str, Any]) -> dict[str, Any]:
    """`fields` as the contract's `model` sends them: checked here, so that an agent bug is
    found on the agent (an ApiRefused naming the field) rather than as the API's 422."""
    try:
        return model.model_validate(fields).model_dump(mode="json", exclude_unset=True)
    except ValidationError as exc:
        raise ApiRefused(f"the agent's {model.__name__} is invalid: {exc}", 422) from exc


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

    def upload_image(self, image_id: str, path: Path) -> None:
        """The file's bytes as the data of queued image `image_id` (a snapshot of one of this
        host's instances), streamed through the image API."""


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
        content: IO[bytes] | None = None,
    ) -> Any:
        headers = {CONTRACT_HEADER: str(CONTRACT_VERSION)}
        if content is not None:
            headers["Content-Type"] = "application/octet-stream"
        for attempt in range(len(self._clients)):
            http = self._http
            if content is not None:
                content.seek(0)  # the next endpoint gets the whole body again
            try:
                response = http.request(
                    method,
                    path,
                    json=json,
                    params=params,
                    content=content,
                    headers=headers,
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
        if response.status_code == 406 and CONTRACT_HEADER in response.headers:
            theirs = header_version(response.headers[CONTRACT_HEADER])
            raise ContractMismatch(mismatch(theirs, "API") or _reason(response), 406)
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
        body = _body(
            ServiceUpdate,
            {
                **(details or {}),
                "binary": "filemem-compute",
                "provider_uuid": provider_uuid,
                "file_backed": file_backed_memory_mb > 0,
                "file_backed_memory_mb": file_backed_memory_mb,
            },
        )
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
        return _answer(RegistrationAnswer, answer, f"PUT {path}").ram_allocation_ratio

    def watch(self, host: str, since: int | None, wait: float) -> tuple[int, list[DesiredInstance]]:
        """The full desired set for `host`, once something changed after `since` (or `wait`)."""
        params: dict[str, Any] = {"wait": int(wait)}
        if since is not None:
            params["since"] = since
        path = f"/filemem/v1/hosts/{host}/instances"
        body = self._call("GET", path, params=params, timeout=wait + 10)
        answer = _answer(WatchAnswer, body, f"GET {path}")
        return answer.cursor, [DesiredInstance.from_contract(i) for i in answer.instances]

    def report_memory_usage(self, host: str, guests: dict[str, dict[str, Any]]) -> None:
        """Every running guest's working set, for the admin view of its server."""
        body = _body(MemoryUsageReport, {"guests": guests})
        self._call("PUT", f"/filemem/v1/hosts/{host}/memory-usage", json=body)

    def report(self, uuid: str, fields: dict[str, Any]) -> None:
        self._call("PATCH", f"/filemem/v1/instances/{uuid}", json=_body(InstanceReport, fields))

    def gone(self, uuid: str) -> None:
        self._call("POST", f"/filemem/v1/instances/{uuid}/gone")

    def console(self, uuid: str, output: str, requested_at: str) -> None:
        self._call(
            "PUT",
            f"/filemem/v1/instances/{uuid}/console",
            json=_body(ConsoleOutput, {"output": output, "requested_at": requested_at}),
            missing_ok=True,
        )

    def event(self, uuid: str, body: dict[str, Any]) -> None:
        self._call(
            "POST", f"/filemem/v1/instances/{uuid}/events", json=_body(InstanceEventReport, body)
        )

    def migration_event(self, migration_uuid: str, body: dict[str, Any]) -> None:
        path = f"/filemem/v1/migrations/{migration_uuid}/events"
        self._call("POST", path, json=_body(MigrationEvent, body))

    def upload_image(self, image_id: str, path: Path) -> None:
        with path.open("rb") as handle:
            # The API hashes and inspects the whole file before it answers.
            self._call("PUT", f"/image/v2/images/{image_id}/file", content=handle, timeout=600)

    @contextlib.contextmanager
    def download_image(self, image_id: str) -> Iterator[Iterator[bytes]]:
        """GET /image/v2/images/{image_id}/file with this host's credential, streamed: the
        API lets it through while an instance of this host boots from the image. ApiUnavailable
        when the API cannot be reached or fails (retried), ApiRefused for a 4xx or no data."""
        path = f"/image/v2/images/{image_id}/file"
        http = self._http
        try:
            with http.stream("GET", path, timeout=DOWNLOAD_TIMEOUT) as response:
                if response.status_code >= 500:
                    raise ApiUnavailable(f"GET {path}: API error {response.status_code}")
                if response.status_code >= 400:
                    response.read()
                    raise ApiRefused(
                        f"GET {path}: {response.status_code}: {response.text[:500]}",
                        response.status_code,
                        _reason(response),
                    )
                if response.status_code == 204:
                    raise ApiRefused(f"GET {path}: image {image_id} has no data", 409)
                yield response.iter_bytes(DOWNLOAD_CHUNK)
        except httpx.HTTPError as exc:
            self._fail_over(http)
            raise ApiUnavailable(f"GET {path}: the download failed: {exc}") from exc
