"""The agent's client against a real filemem-api over HTTP: a deleted instance is "gone" by the
API's X-Filemem-Gone marker; a 404 from a route the API does not serve is an error."""

from __future__ import annotations

import datetime as dt
import uuid as uuidlib
from pathlib import Path

import pytest

from filemem.common import agent_wire
from filemem.compute.agent_api import AgentApiClient, ApiMisrouted
from tests.functional.api_fixtures import (
    TOKEN,
    agent_spawned,
    api_env,
    create_server,
    make_flavor,
    make_image,
    register_host,
)


def test_gone_is_the_apis_marker_and_a_wrong_route_is_an_error(tmp_path: Path) -> None:
    with api_env(tmp_path) as env:
        register_host(env, "h1")
        server = create_server(env, "vm", make_flavor(env, "small"), make_image(env))
        agent_spawned(env, server)
        now = dt.datetime.now(dt.UTC).isoformat()
        event = {"event": "e", "result": "Success", "start_time": now, "finish_time": now}
        # An agent pointed at a prefix this API does not serve (version skew, a typo).
        skewed = AgentApiClient(f"{env.url}/filemem-old", TOKEN)
        with pytest.raises(ApiMisrouted):
            skewed.report(server, {"power_state": 1})
        with pytest.raises(ApiMisrouted):
            skewed.event(server, {**event, "traceback": None})
        with pytest.raises(ApiMisrouted):
            skewed.gone(server)
        skewed.close()
        assert env.compute("GET", f"/servers/{server}").status_code == 200  # still there

        client = AgentApiClient(env.url, TOKEN)
        assert env.compute("DELETE", f"/servers/{server}").status_code == 204
        client.gone(server)
        answer = env.http.patch(f"/filemem/v1/instances/{server}", json={"power_state": 1})
        assert answer.status_code == 404
        assert answer.headers[agent_wire.GONE_HEADER] == agent_wire.INSTANCE
        client.report(server, {"power_state": 1})  # gone: nothing left to report
        client.console(server, "", now)
        client.migration_event(str(uuidlib.uuid4()), {"event": "progress"})
        client.close()
