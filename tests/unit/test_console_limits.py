"""ConsoleLimits: waiting console requests are bounded per server and in all, slots come back."""

from __future__ import annotations

import contextlib

import pytest

from filemem.api.console_limits import ConsoleLimits
from filemem.api.errors import TooManyRequests


def test_a_server_over_its_bound_is_refused_naming_the_option() -> None:
    limits = ConsoleLimits(per_server=2, total=10)
    with limits.slot("a"), limits.slot("a"):
        with pytest.raises(TooManyRequests) as refused, limits.slot("a"):
            pass
        assert "max_console_requests_per_server" in refused.value.message
        assert refused.value.status == 429
        with limits.slot("b"):
            assert limits.waiting("a") == 2 and limits.waiting() == 3


def test_the_process_over_its_bound_is_refused_naming_the_option() -> None:
    limits = ConsoleLimits(per_server=4, total=3)
    with contextlib.ExitStack() as held:
        for server in ("a", "b", "c"):
            held.enter_context(limits.slot(server))
        with pytest.raises(TooManyRequests) as refused, limits.slot("d"):
            pass
        assert "[api] max_console_requests)" in refused.value.message
        assert "per_server" not in refused.value.message


def test_slots_come_back_when_the_wait_ends_or_fails() -> None:
    limits = ConsoleLimits(per_server=1, total=1)
    with pytest.raises(RuntimeError), limits.slot("a"):
        raise RuntimeError("the wait failed")
    assert limits.waiting() == 0 and limits.waiting("a") == 0
    with limits.slot("a"):
        assert limits.waiting("a") == 1
    assert limits.waiting() == 0
