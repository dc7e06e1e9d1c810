"""schemathesis over the OpenAPI document against a running filemem-api, on SQLite and on
PostgreSQL (which refuses what SQLite stores, e.g. NUL): no input gives a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
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


@contextmanager
def deployment(backend: str, state: Path) -> Iterator[ApiEnv]:
    if backend == "sqlite":
        with api_env(state) as running:
            yield running
        return
    with PostgresCluster() as url, api_env(state, database_url=url) as running:
        yield running


@pytest.fixture(scope="module")
def env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ApiEnv]:
    backend = getattr(request, "param", "sqlite")
    with deployment(backend, tmp_path_factory.mktemp(f"api-fuzz-{backend}")) as running:
        # Something to find, so that generated ids sometimes hit real rows.
        register_host(running, "fuzz-host")
        make_flavor(running, "fuzz.flavor", extra_specs={"k": "v"})
        make_image(running, "fuzz-image")
        yield running


def test_the_fuzzed_document_is_the_served_one(env: ApiEnv) -> None:
    assert httpx.get(f"{env.url}/openapi.json").json() == openapi_document()


@schema.parametrize()
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@pytest.mark.parametrize(
    ("env", "version"),
    # PostgreSQL at the maximum only, where every route and field exists: what it adds is the
    # database's own refusals, and this keeps the module's run time at ~1.5x SQLite's alone.
    [("sqlite", "2.1"), ("sqlite", "latest"), ("postgresql", "latest")],
    indirect=["env"],
)
def test_no_input_makes_a_server_error(
    case: schemathesis.Case[Any], env: ApiEnv, version: str
) -> None:
    # At 2.1 and at the maximum: routes and fields that only exist from a later microversion
    # (tags, keypair types, migrations, force-down) are fuzzed too.
    headers = {"X-Auth-Token": TOKEN, "OpenStack-API-Version": f"compute {version}"}
    case.call_and_validate(base_url=env.url, headers=headers, checks=[not_a_server_error])
