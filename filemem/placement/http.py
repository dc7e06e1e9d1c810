"""HttpTransport: Placement over HTTP through keystoneauth1 (static token or an auth plugin)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint

from filemem.exceptions import PlacementError
from filemem.placement.client import PlacementUnavailable, Response

LOG = logging.getLogger(__name__)


class HttpTransport:
    """Placement over HTTP through a keystoneauth1 Session (static token or any auth plugin)."""

    def __init__(
        self,
        session: ks_session.Session,
        endpoint: str | None,
        *,
        interface: str = "internal",
        region_name: str | None = None,
    ) -> None:
        self._session = session
        self._endpoint_override = endpoint or None
        self._endpoint_filter: dict[str, Any] = {
            "service_type": "placement",
            "interface": interface,
            "region_name": region_name,
        }
        self.endpoint = endpoint or f"the placement endpoint ({interface}) of the service catalog"

    @classmethod
    def with_token(cls, endpoint: str, token: str, timeout: float = 30.0) -> HttpTransport:
        """For a standalone Placement under noauth2: the token is sent as-is in X-Auth-Token."""
        auth = token_endpoint.Token(endpoint, token)
        return cls(ks_session.Session(auth=auth, timeout=timeout), endpoint)

    def request(
        self, method: str, path: str, json_body: dict[str, Any] | None, headers: Mapping[str, str]
    ) -> Response:
        try:
            resp = self._session.request(
                path,
                method,
                json=json_body,
                headers=dict(headers),
                raise_exc=False,
                endpoint_override=self._endpoint_override,
                endpoint_filter=self._endpoint_filter,
                connect_retries=0,
                logger=LOG,
            )
        except (ks_exc.ConnectionError, ks_exc.DiscoveryFailure) as exc:
            # DiscoveryFailure: Keystone itself could not be reached to get a token.
            raise PlacementUnavailable(self.endpoint, str(exc)) from exc
        except ks_exc.EndpointNotFound as exc:
            raise PlacementUnavailable(self.endpoint, f"not in the service catalog: {exc}") from exc
        except ks_exc.ClientException as exc:
            raise PlacementError(
                f"cannot authenticate to Placement at {self.endpoint}: {exc}",
                getattr(exc, "http_status", None),
            ) from exc
        body: dict[str, Any] | None = None
        if resp.content and "json" in resp.headers.get("Content-Type", ""):
            parsed = resp.json()
            body = parsed if isinstance(parsed, dict) else {"value": parsed}
        return Response(resp.status_code, body, dict(resp.headers))
