"""Bad input over real HTTP: always a 4xx with nova's error body and a reason, never 422/5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.functional.api_fixtures import ApiEnv, api_env, make_flavor, make_image


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("api-bad-input")) as running:
        yield running


@pytest.fixture(scope="module")
def refs(env: ApiEnv) -> dict[str, str]:
    return {"flavorRef": make_flavor(env, "bad.input"), "imageRef": make_image(env, "bad")}


def bad_request(response: Any) -> str:
    assert response.status_code == 400, (response.status_code, response.text)
    message: str = response.json()["badRequest"]["message"]
    assert response.json()["badRequest"]["code"] == 400
    assert message
    return message


@pytest.mark.parametrize(
    "path",
    ["/servers", "/flavors", "/servers/00000000-0000-0000-0000-000000000000/action"],
)
@pytest.mark.parametrize("content", [b"{not json", b"", b"[1, 2]", b"null", b'"text"'])
def test_malformed_or_wrong_json_is_400(env: ApiEnv, path: str, content: bytes) -> None:
    response = env.compute(
        "POST", path, content=content, headers={"Content-Type": "application/json"}
    )
    bad_request(response)


def test_malformed_json_names_itself(env: ApiEnv) -> None:
    response = env.compute(
        "POST", "/servers", content=b'{"server": ', headers={"Content-Type": "application/json"}
    )
    assert bad_request(response) == "Malformed request body"


@pytest.mark.parametrize(
    ("server", "reason"),
    [
        ({"name": "x", "flavorRef": "missing-flavor"}, "flavorRef"),
        ({"name": "x", "imageRef": "00000000-0000-0000-0000-000000000000"}, "imageRef"),
        ({"name": ""}, "server.name"),
        ({"name": "x" * 256}, "at most 255"),
        ({"name": "x", "color": "red"}, "Additional properties are not allowed"),
        ({"name": "x", "max_count": 0}, "max_count"),
        ({"name": 7}, "valid string"),
    ],
)
def test_bad_server_bodies(
    env: ApiEnv, refs: dict[str, str], server: dict[str, Any], reason: str
) -> None:
    message = bad_request(env.compute("POST", "/servers", json={"server": {**refs, **server}}))
    assert reason in message, message


@pytest.mark.parametrize(
    ("flavor", "reason"),
    [
        ({"ram": -1}, "flavor.ram"),
        ({"ram": 10**12}, "flavor.ram"),
        ({"vcpus": 0}, "flavor.vcpus"),
        ({"vcpus": 10**6}, "flavor.vcpus"),
        ({"disk": -5}, "flavor.disk"),
        ({"disk": 2**63}, "flavor.disk"),
        ({"ram": 1.5}, "flavor.ram"),
        ({"name": None}, "flavor.name"),
        ({"unknown": 1}, "Additional properties are not allowed"),
    ],
)
def test_bad_flavor_bodies(env: ApiEnv, flavor: dict[str, Any], reason: str) -> None:
    body = {"name": "bad", "ram": 256, "vcpus": 1, "disk": 0, **flavor}
    message = bad_request(env.compute("POST", "/flavors", json={"flavor": body}))
    assert reason in message, message


def test_missing_envelope_and_extra_top_level_keys(env: ApiEnv) -> None:
    assert "server" in bad_request(env.compute("POST", "/servers", json={"name": "x"}))
    bad_request(
        env.compute(
            "POST",
            "/flavors",
            json={"flavor": {"name": "x", "ram": 256, "vcpus": 1, "disk": 0}, "extra": 1},
        )
    )


@pytest.mark.parametrize("params", [{"limit": -1}, {"limit": "many"}, {"limit": 10**30}])
def test_bad_query_parameters(env: ApiEnv, params: dict[str, Any]) -> None:
    assert "limit" in bad_request(env.compute("GET", "/servers", params=params))


def test_unknown_ids_are_404_not_500(env: ApiEnv) -> None:
    for path in ("/servers/not-a-uuid", "/flavors/a%2Fb"):
        response = env.compute("GET", path)
        assert response.status_code == 404, (path, response.text)
        assert "itemNotFound" in response.json()
    # A NUL never reaches a handler (PostgreSQL cannot store one): the edge's 400 says where.
    for path in ("/servers/%00", "/flavors/%00", "/os-hypervisors/%00", "/images/%00"):
        assert "request path" in bad_request(env.compute("GET", path)), path


def test_nul_and_surrogates_are_refused(env: ApiEnv, refs: dict[str, str]) -> None:
    body = b'{"server": {"name": "a\\u0000b", "flavorRef": "1", "imageRef": "x"}}'
    bad_request(
        env.compute("POST", "/servers", content=body, headers={"Content-Type": "application/json"})
    )
    body = b'{"flavor": {"name": "\\ud800", "ram": 256, "vcpus": 1, "disk": 0}}'
    bad_request(
        env.compute("POST", "/flavors", content=body, headers={"Content-Type": "application/json"})
    )


def test_wrong_method_and_oversized_body(env: ApiEnv) -> None:
    assert env.compute("PATCH", "/servers").status_code == 405
    huge = b'{"server": {"name": "' + b"x" * (2 * 1024 * 1024) + b'"}}'
    response = env.compute(
        "POST", "/servers", content=huge, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413


def test_agent_api_validates_too(env: ApiEnv) -> None:
    bad_request(env.http.put("/filemem/v1/services/h", json={"provider_uuid": "nope"}))
    bad_request(
        env.http.put(
            "/filemem/v1/services/bad%20host",
            json={"provider_uuid": "00000000-0000-0000-0000-000000000001"},
        )
    )
    bad_request(env.http.get("/filemem/v1/hosts/h/instances", params={"wait": 31}))
    bad_request(
        env.http.patch(
            "/filemem/v1/instances/00000000-0000-0000-0000-000000000000",
            json={"vm_state": "exploded"},
        )
    )


def test_microversions_are_negotiated_as_nova_does(env: ApiEnv) -> None:
    served = env.http.get("/v2.1/flavors", headers={"OpenStack-API-Version": "compute latest"})
    assert served.status_code == 200
    assert served.headers["OpenStack-API-Version"] == "compute 2.37"
    assert served.headers["X-OpenStack-Nova-API-Version"] == "2.37"
    assert served.headers["x-openstack-request-id"].startswith("req-")
    plain = env.http.get("/v2.1/flavors")
    assert plain.headers["OpenStack-API-Version"] == "compute 2.1"
    assert "OpenStack-API-Version" in served.headers["Vary"]
    too_new = env.http.get("/v2.1/flavors", headers={"OpenStack-API-Version": "compute 2.99"})
    assert too_new.status_code == 406
    assert too_new.json()["notAcceptable"]["message"] == (
        "Version 2.99 is not supported by the API. Minimum is 2.1 and maximum is 2.37."
    )
    legacy = env.http.get("/v2.1/flavors", headers={"X-OpenStack-Nova-API-Version": "2.x"})
    assert "is of invalid format" in bad_request(legacy)
    # The token is checked first: an anonymous caller learns nothing about versions.
    anonymous = env.http.get(
        "/v2.1/flavors",
        headers={"OpenStack-API-Version": "compute 2.99", "X-Auth-Token": "wrong"},
    )
    assert anonymous.status_code == 401
    document = env.http.get("/v2.1").json()["version"]
    assert (document["min_version"], document["version"]) == ("2.1", "2.37")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/servers/00000000-0000-4000-8000-000000000000/os-volume_attachments"),
        ("GET", "/os-server-groups"),
        ("PUT", "/os-keypairs/some-key"),
    ],
)
def test_a_call_filemem_does_not_implement_says_so_naming_it(
    env: ApiEnv, method: str, path: str
) -> None:
    response = env.compute(method, path, json={} if method == "PUT" else None)
    assert response.status_code in (404, 405), response.text
    [body] = response.json().values()
    assert body["message"].startswith(f"filemem does not implement {method} /v2.1{path}")
