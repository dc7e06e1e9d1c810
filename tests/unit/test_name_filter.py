"""The servers name filter: nova's regular-expression search, in linear time, 400 on refusal."""

from __future__ import annotations

import time

import pytest

from filemem.api.errors import BadRequest
from filemem.api.name_filter import name_matcher


def test_it_searches_anywhere_in_the_name_as_nova() -> None:
    matches = name_matcher(r"web-\d+")
    assert matches("web-12") and matches("old-web-3") and not matches("web-x")
    assert name_matcher("^db$")("db") and not name_matcher("^db$")("db-1")


def test_backtracking_patterns_run_in_linear_time() -> None:
    # Python's re takes about 2**n steps here: ~2 s at n = 25, centuries at 200.
    start = time.monotonic()
    assert not name_matcher("(a+)+$")("a" * 200 + "!")
    assert not name_matcher("(a|aa)*b")("a" * 200)
    assert time.monotonic() - start < 0.5


@pytest.mark.parametrize("pattern", [r"(a)\1", "(?=a)", "(?<!b)a", "(", "a{2000}", "x**"])
def test_what_the_matcher_cannot_run_is_400_naming_the_parameter(pattern: str) -> None:
    with pytest.raises(BadRequest) as refused:
        name_matcher(pattern, "name")
    assert "query parameter name" in refused.value.message


def test_a_pattern_too_big_for_its_memory_is_refused() -> None:
    # A thousand copies of every Unicode letter: far more than 8 MiB of program.
    with pytest.raises(BadRequest) as refused:
        name_matcher(r"\pL{1000}")
    assert "too large" in refused.value.message


def test_text_without_utf8_is_a_400_or_matched_safely() -> None:
    # JSON may carry a lone surrogate ("\\ud800"); RE2 works on UTF-8.
    with pytest.raises(BadRequest):
        name_matcher("\ud800")
    assert name_matcher("^a.b$")("a\ud800b")
