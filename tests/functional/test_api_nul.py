"""Input PostgreSQL cannot store, over real HTTP on SQLite and on PostgreSQL: every request shape
that used to reach the database with a NUL is a 400 naming where the NUL was, and ids beyond
the database's 32-bit integers are a 4xx, never a 500 DataError (found by the fuzz test)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.functional.api_fixtures import ApiEnv, api_env
from tests.functional.postgres import PostgresCluster

LATEST = {"OpenStack-API-Version": "compute latest"}
SERVICE = {
    "binary": "filemem-compute",
    "provider_uuid": "00000000-0000-0000-0000-000000000001",
    "file_backed": True,
    "file_backed_memory_mb": 1024,
}
SERVER = {"name": "nul", "flavorRef": "1", "imageRef": "00000000-0000-0000-0000-000000000002"}

# (method, path, JSON body or None, where the refusal must say the NUL was); paths are sent
# as written, so %00 reaches the server percent-encoded, as an attacker would send it.
SHAPES: list[tuple[str, str, Any, str]] = [
    ("GET", "/v2.1/servers?host=a%00b", None, "query parameter 'host'"),
    ("GET", "/v2.1/servers/detail?flavor=1%00", None, "query parameter 'flavor'"),
    ("GET", "/v2.1/servers?image=%00", None, "query parameter 'image'"),
    ("GET", "/v2.1/os-migrations?host=h%00", None, "query parameter 'host'"),
    ("GET", "/v2.1/servers?na%00me=x", None, "query parameter"),
    ("GET", "/v2.1/os-quota-sets/p%00", None, "request path"),
    ("PUT", "/v2.1/os-quota-sets/p%00", {"quota_set": {"cores": 5}}, "request path"),
    ("GET", "/v2.1/os-quota-sets/p%00/defaults", None, "request path"),
    ("GET", "/v2.1/os-quota-sets/p%00/detail", None, "request path"),
    ("GET", "/v2.1/os-keypairs/k%00", None, "request path"),
    ("DELETE", "/v2.1/os-keypairs/k%00", None, "request path"),
    (
        "POST",
        "/v2.1/os-keypairs",
        {"keypair": {"name": "k", "user_id": "u\0"}},
        "request body at keypair.user_id",
    ),
    (
        "POST",
        "/v2.1/os-aggregates/{aggregate}/action",
        {"set_metadata": {"metadata": {"k": "a\0b"}}},
        "request body at set_metadata.metadata.k",
    ),
    (
        "POST",
        "/v2.1/os-aggregates/{aggregate}/action",
        {"set_metadata": {"metadata": {"k\0": "v"}}},
        "a key in the request body at set_metadata.metadata",
    ),
    (
        "POST",
        "/v2.1/servers",
        {"server": {**SERVER, "metadata": {"k": "v\0"}}},
        "request body at server.metadata.k",
    ),
    ("PUT", "/filemem/v1/services/h%00", SERVICE, "request path"),
    ("GET", "/filemem/v1/hosts/h%00/instances", None, "request path"),
    ("PUT", "/filemem/v1/hosts/h%00/memory-usage", {"instances": {}}, "request path"),
    (
        "PUT",
        "/filemem/v1/services/h",
        {**SERVICE, "binary": "filemem-\0compute"},
        "request body at binary",
    ),
]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiEnv]:
    state = tmp_path_factory.mktemp(f"api-nul-{request.param}")
    if request.param == "sqlite":
        with api_env(state) as running:
            yield running
        return
    with PostgresCluster() as url, api_env(state, database_url=url) as running:
        yield running


@pytest.fixture(scope="module")
def aggregate(env: ApiEnv) -> str:
    response = env.compute("POST", "/os-aggregates", json={"aggregate": {"name": "nul-agg"}})
    assert response.status_code == 200, response.text
    return str(response.json()["aggregate"]["id"])


@pytest.mark.parametrize(("method", "path", "body", "where"), SHAPES)
def test_a_nul_anywhere_is_a_400_naming_where(
    env: ApiEnv, aggregate: str, method: str, path: str, body: Any, where: str
) -> None:
    response = env.http.request(method, path.format(aggregate=aggregate), json=body, headers=LATEST)
    assert response.status_code == 400, (response.status_code, response.text)
    message = response.json()["badRequest"]["message"]
    assert "NUL" in message, message
    assert where in message, message


def test_escaped_backslashes_and_clean_requests_still_pass(env: ApiEnv, aggregate: str) -> None:
    # A literal backslash followed by u0000 is six ordinary characters, not a NUL.
    response = env.compute(
        "POST",
        f"/os-aggregates/{aggregate}/action",
        json={"set_metadata": {"metadata": {"k": "\\u0000"}}},
    )
    assert response.status_code == 200, response.text
    assert response.json()["aggregate"]["metadata"]["k"] == "\\u0000"
    assert env.compute("GET", "/servers?host=a%5C0b").status_code == 200


@pytest.mark.parametrize("number", [2**31, 2**63 - 1, 2**64, -(2**31) - 1])
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v2.1/os-aggregates/{n}", None),
        ("PUT", "/v2.1/os-aggregates/{n}", {"aggregate": {"name": "x"}}),
        ("DELETE", "/v2.1/os-aggregates/{n}", None),
        ("POST", "/v2.1/os-aggregates/{n}/action", {"set_metadata": {"metadata": {"a": "b"}}}),
        ("DELETE", "/v2.1/os-services/{n}", None),
        ("DELETE", "/filemem/v1/hosts/h/credentials/{n}", None),
    ],
)
def test_ids_beyond_the_database_integers_are_4xx(
    env: ApiEnv, method: str, path: str, body: Any, number: int
) -> None:
    response = env.http.request(method, path.format(n=number), json=body, headers=LATEST)
    assert response.status_code in (400, 404), (response.status_code, response.text)
