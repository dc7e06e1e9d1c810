"""One parser of nova error bodies, for the agent's and the CLI's clients of the API."""

from __future__ import annotations

import httpx
import pytest

from filemem.cmd import compute_api
from filemem.common.nova_errors import fault_message
from filemem.compute import agent_api


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"conflictingRequest": {"code": 409, "message": "in use"}}', "in use"),
        ('{"itemNotFound": {"message": 42}}', "42"),
        ('{"badRequest": {"code": 400}}', None),
        ('{"a": {"message": "x"}, "b": {"message": "y"}}', None),
        ('["not", "nova"]', None),
        ('{"badRequest": "flat"}', None),
        ("<html>proxy error</html>", None),
        ("", None),
    ],
)
def test_fault_message(text: str, message: str | None) -> None:
    assert fault_message(text) == message


def test_the_agent_and_the_cli_read_the_same_message() -> None:
    nova = httpx.Response(409, text='{"conflictingRequest": {"message": "in use"}}')
    assert agent_api._reason(nova) == compute_api._reason(nova) == "in use"
    other = httpx.Response(502, text="<html>bad gateway</html>")
    assert agent_api._reason(other) == compute_api._reason(other) == "<html>bad gateway</html>"
