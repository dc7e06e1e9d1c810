"""schemathesis over the OpenAPI document against a running filemem-api, on SQLite and on
PostgreSQL (which refuses what SQLite stores, e.g. NUL): no input gives a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from filemem.api.app import openapi_document
from tests.functional.api_fixtures import (
    TOKEN,
    ApiEnv,
    api_env,
    make_flavor,
    make_image,
    register_host,
)
from tests.functional.postgres import PostgresCluster

# The long-poll may legitimately hold a request for up to 30 s; it is tested on its own.
LONG_POLL = "/filemem/v1/hosts/{host}/instances"

# Built from the code (pytest collects before any server runs); the test below checks that
# the running server serves this very document.
schema = schemathesis.openapi.from_dict(openapi_document()).exclude(path=LONG_POLL)


def seeded(running: ApiEnv) -> ApiEnv:
    """Something to find, so that generated ids sometimes hit real rows."""
    register_host(running, "fuzz-host")
    make_flavor(running, "fuzz.flavor", extra_specs={"k": "v"})
    make_image(running, "fuzz-image")
    return running


# One deployment per database for the whole module: a parametrized fixture would be torn down
# and built again whenever consecutive (per-operation) tests switch database.
@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    with api_env(tmp_path_factory.mktemp("api-fuzz-sqlite")) as running:
        yield seeded(running)


@pytest.fixture(scope="module")
def pg_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiEnv]:
    state = tmp_path_factory.mktemp("api-fuzz-postgresql")
    with PostgresCluster() as url, api_env(state, database_url=url) as running:
        yield seeded(running)


def test_the_fuzzed_document_is_the_served_one(env: ApiEnv) -> None:
    assert httpx.get(f"{env.url}/openapi.json").json() == openapi_document()


def call(case: schemathesis.Case[Any], env: ApiEnv, version: str) -> None:
    headers = {"X-Auth-Token": TOKEN, "OpenStack-API-Version": f"compute {version}"}
    case.call_and_validate(base_url=env.url, headers=headers, checks=[not_a_server_error])


FUZZ = settings(
    max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck)
)


@schema.parametrize()
@FUZZ
@pytest.mark.parametrize("version", ["2.1", "latest"])
def test_no_input_makes_a_server_error(
    case: schemathesis.Case[Any], env: ApiEnv, version: str
) -> None:
    # At 2.1 and at the maximum: routes and fields that only exist from a later microversion
    # (tags, keypair types, migrations, force-down) are fuzzed too.
    call(case, env, version)


@schema.parametrize()
@FUZZ
def test_no_input_makes_a_server_error_on_postgresql(
    case: schemathesis.Case[Any], pg_env: ApiEnv
) -> None:
    # PostgreSQL refuses what SQLite stores (NUL, integers beyond 32 bits). At the maximum
    # microversion only, where every route and field exists: what PostgreSQL adds is the
    # database's own refusals.
    call(case, pg_env, "latest")
