"""Placement stopped under a running filemem-api: boot, resize and live migration answer 503
(never nova's "No valid host", never a server left in ERROR), and work again once it is back."""

from __future__ import annotations

import uuid as uuidlib
from pathlib import Path

from filemem.common.resources import MEMORY_MB, VCPU
from tests.functional.api_fixtures import (
    ApiEnv,
    ApiProcess,
    agent_spawned,
    api_conf,
    create_server,
    http_client,
    make_flavor,
    make_image,
    placement_client,
    show_server,
)
from tests.functional.placement_fixtures import StandalonePlacement, free_port

CAPABLE = {"file_backed_memory": True, "live_migration": True}


def register(env: ApiEnv, host: str) -> None:
    """An agent's registration, with the fields a live migration destination needs."""
    provider = str(uuidlib.uuid4())
    env.placement.ensure_resource_provider(provider, host)
    inventory = {MEMORY_MB: {"total": 2048, "max_unit": 2048}, VCPU: {"total": 8}}
    env.placement.set_inventories(provider, inventory)
    body = {
        "binary": "filemem-compute",
        "provider_uuid": provider,
        "file_backed": True,
        "file_backed_memory_mb": 2048,
        "capabilities": CAPABLE,
        "version": "0.1",
        "migration_address": "127.0.0.1",
        "store_free_mb": 2048,
    }
    answer = env.http.put(f"/filemem/v1/services/{host}", json=body)
    assert answer.status_code == 200, answer.text


def test_an_unreachable_placement_is_503_and_leaves_nothing(tmp_path: Path) -> None:
    port = free_port()
    placement = StandalonePlacement(tmp_path / "placement", port)
    url = placement.start()
    conf = api_conf(tmp_path / "api", url, default="allow_resize_to_same_host = true\n")
    api = ApiProcess(tmp_path / "api", conf)
    api.start()
    try:
        with http_client(api.url) as http:
            (tmp_path / "files").mkdir()
            env = ApiEnv(api.url, url, http, placement_client(url), tmp_path / "files", api)
            register(env, "h1")
            register(env, "h2")
            flavor, bigger = make_flavor(env, "small"), make_flavor(env, "bigger", ram=512)
            image = make_image(env)
            server = create_server(env, "vm", flavor, image)
            assert show_server(env, server)["OS-EXT-SRV-ATTR:host"] in ("h1", "h2")
            agent_spawned(env, server)
            host = show_server(env, server)["OS-EXT-SRV-ATTR:host"]
            other = "h2" if host == "h1" else "h1"

            assert placement.stop() is not None
            body = {"server": {"name": "vm2", "flavorRef": flavor, "imageRef": image}}
            boot = env.compute("POST", "/servers", json=body)
            assert boot.status_code == 503, boot.text
            listed = env.compute("GET", "/servers").json()["servers"]
            assert [s["id"] for s in listed] == [server]  # no server left in ERROR
            action = f"/servers/{server}/action"
            resize = env.compute("POST", action, json={"resize": {"flavorRef": bigger}})
            assert resize.status_code == 503, resize.text
            for version in ("2.30", "2.34"):
                ask = {"os-migrateLive": {"host": other, "block_migration": "auto", "force": True}}
                headers = {"OpenStack-API-Version": f"compute {version}"}
                move = env.compute("POST", action, json=ask, headers=headers)
                assert move.status_code == 503, move.text
            for answer in (boot, resize, move):
                assert "No valid host" not in answer.text
                assert "serviceUnavailable" in answer.json()
            shown = show_server(env, server)
            assert (shown["status"], shown["OS-EXT-STS:task_state"]) == ("ACTIVE", None)

            # Placement back on the same port and database: the same boot goes through.
            placement = StandalonePlacement(tmp_path / "placement", port)
            placement.start()
            again = create_server(env, "vm2", flavor, image)
            assert show_server(env, again)["status"] != "ERROR"
    finally:
        api.stop()
        placement.stop()
