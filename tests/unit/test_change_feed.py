"""ChangeFeed: per-host waiters woken from any thread, timeouts, many waiters, disconnects; the
commit hook that feeds it (change_events) on a real SQLite database."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from filemem.api.change_feed import ChangeFeed, Waiter, closed_on_disconnect, recheck_delay
from filemem.db import api as db_api
from filemem.db import migrate
from filemem.db.change_listener import BACKOFF_FIRST_S, BACKOFF_MAX_S, next_backoff
from filemem.db.session import Database


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_wake_from_another_thread_ends_the_wait_at_once() -> None:
    feed = ChangeFeed()

    async def scenario() -> tuple[bool, float, bool]:
        with feed.subscribe("a") as a, feed.subscribe("b") as b:
            a.arm()
            b.arm()
            started = time.monotonic()
            threading.Timer(0.05, feed.wake, args=(["a"],)).start()
            woken = await a.wait(10)
            took = time.monotonic() - started
            other = await b.wait(0.05)
        return woken, took, other

    woken, took, other = run(scenario())
    assert woken
    assert took < 2.0, f"the wake-up took {took:.3f} s"
    assert not other  # host b did not change


def test_a_wait_without_wake_times_out() -> None:
    feed = ChangeFeed()

    async def scenario() -> tuple[bool, float]:
        with feed.subscribe("a") as waiter:
            waiter.arm()
            started = time.monotonic()
            woken = await waiter.wait(0.1)
            return woken, time.monotonic() - started

    woken, took = run(scenario())
    assert not woken
    assert took >= 0.09


def test_a_wake_between_arm_and_wait_is_not_lost() -> None:
    feed = ChangeFeed()

    async def scenario() -> bool:
        with feed.subscribe("a") as waiter:
            waiter.arm()
            # The database read would happen here; the change commits meanwhile.
            assert feed.wake(["a"]) == 1
            await asyncio.sleep(0)  # the wake-up callback runs on this loop
            return await waiter.wait(0.01)

    assert run(scenario())


def test_arm_forgets_an_old_wake() -> None:
    feed = ChangeFeed()

    async def scenario() -> bool:
        with feed.subscribe("a") as waiter:
            feed.wake(["a"])
            await asyncio.sleep(0)
            waiter.arm()
            return await waiter.wait(0.05)

    assert not run(scenario())


def test_many_waiters_wake_by_host_and_all() -> None:
    feed = ChangeFeed()
    hosts = [f"host-{i}" for i in range(50)]

    async def scenario() -> tuple[int, int, int, int, int]:
        async def wait_one(waiter: Waiter) -> bool:
            # Generous: under a loaded full run the loop can be late by more than 0.5 s.
            return await waiter.wait(2.0)

        with contextlib_stack(feed, hosts, per_host=20) as waiters:
            assert feed.waiting() == 1000
            assert feed.waiting("host-7") == 20
            for waiter in waiters:
                waiter.arm()
            tasks = [asyncio.create_task(wait_one(w)) for w in waiters]
            await asyncio.sleep(0)
            woken = await asyncio.to_thread(feed.wake, ["host-7", "host-9", "nobody"])
            results = await asyncio.gather(*tasks)
            by_host = sum(1 for w, r in zip(waiters, results, strict=True) if r)
            wrong = sum(
                1
                for w, r in zip(waiters, results, strict=True)
                if r and w.host not in {"host-7", "host-9"}
            )
            for waiter in waiters:
                waiter.arm()
            everyone = await asyncio.to_thread(feed.wake_all)
            all_results = await asyncio.gather(*(w.wait(2) for w in waiters))
        return woken, by_host, wrong, everyone, sum(all_results)

    woken, by_host, wrong, everyone, all_woken = run(scenario())
    assert (woken, by_host, wrong) == (40, 40, 0)
    assert (everyone, all_woken) == (1000, 1000)
    assert feed.waiting() == 0


class contextlib_stack:
    """Subscribe `per_host` waiters to each host for the block."""

    def __init__(self, feed: ChangeFeed, hosts: list[str], per_host: int) -> None:
        self._subs = [feed.subscribe(h) for h in hosts for _ in range(per_host)]

    def __enter__(self) -> list[Waiter]:
        return [sub.__enter__() for sub in self._subs]

    def __exit__(self, *exc: object) -> None:
        for sub in self._subs:
            sub.__exit__(None, None, None)


def test_a_cancelled_wait_leaves_no_waiter() -> None:
    feed = ChangeFeed()

    async def poll() -> None:
        with feed.subscribe("a") as waiter:
            waiter.arm()
            await waiter.wait(30)

    async def scenario() -> None:
        task = asyncio.create_task(poll())
        await asyncio.sleep(0.01)
        assert feed.waiting("a") == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(scenario())
    assert feed.waiting() == 0


class _Request:
    """What closed_on_disconnect reads of a starlette Request: receive()."""

    def __init__(self, disconnect_after: float) -> None:
        self._messages = [{"type": "http.request", "body": b"", "more_body": False}]
        self._after = disconnect_after

    async def receive(self) -> dict[str, Any]:
        if self._messages:
            return self._messages.pop()
        await asyncio.sleep(self._after)
        return {"type": "http.disconnect"}


def test_a_disconnect_closes_the_waiter_and_ends_its_wait() -> None:
    feed = ChangeFeed()

    async def scenario() -> tuple[bool, bool, float]:
        with feed.subscribe("a") as waiter:
            async with closed_on_disconnect(_Request(0.05), waiter):  # type: ignore[arg-type]
                waiter.arm()
                started = time.monotonic()
                woken = await waiter.wait(10)
                return woken, waiter.closed, time.monotonic() - started

    woken, closed, took = run(scenario())
    assert woken and closed
    assert took < 2.0
    assert feed.waiting() == 0


def test_the_disconnect_watch_ends_with_the_block() -> None:
    feed = ChangeFeed()

    async def scenario() -> int:
        with feed.subscribe("a") as waiter:
            async with closed_on_disconnect(_Request(30), waiter):  # type: ignore[arg-type]
                pass
        await asyncio.sleep(0)
        return len([t for t in asyncio.all_tasks() if t is not asyncio.current_task()])

    assert run(scenario()) == 0


def test_a_wake_for_a_stopped_loop_is_ignored() -> None:
    feed = ChangeFeed()
    kept: list[Any] = []

    async def subscribe_and_leave() -> None:
        sub = feed.subscribe("a")
        sub.__enter__()  # never left: its loop ends with it registered
        kept.append(sub)

    run(subscribe_and_leave())
    assert feed.wake(["a"]) == 1  # no error although the loop is closed


# -- the commit hook (filemem.db.change_events) -------------------------------------------


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'api.sqlite'}"
    migrate.upgrade(url)
    db = Database(url)
    yield db
    db.dispose()


def test_hosts_are_told_after_commit_only(database: Database) -> None:
    told: list[tuple[frozenset[str], int]] = []

    def hook(hosts: frozenset[str]) -> None:
        # After the commit: another connection already sees the new cursor.
        with database.reader() as session:
            told.append((hosts, db_api.latest_change(session, "h1")))

    database.on_changes(hook)
    with database.session() as session:
        cursor = db_api.append_change(session, "h1", "u1")
        db_api.append_change(session, "h2", "u2")
        db_api.append_change(session, "h1", "u3")
        assert told == []
    assert len(told) == 1
    assert told[0][0] == frozenset({"h1", "h2"})
    assert told[0][1] > cursor


def test_a_rolled_back_change_is_not_told(database: Database) -> None:
    told: list[frozenset[str]] = []
    database.on_changes(told.append)
    with pytest.raises(RuntimeError), database.session() as session:
        db_api.append_change(session, "h1", "u1")
        raise RuntimeError("the handler failed")
    with database.session() as session:
        db_api.touch_service(session, "h1")  # a commit without a change
    assert told == []
    with database.session() as session:
        db_api.append_change(session, "h3", "u1")
    assert told == [frozenset({"h3"})]


def test_a_failing_hook_does_not_undo_the_commit_or_stop_the_others(database: Database) -> None:
    told: list[frozenset[str]] = []

    def broken(_hosts: frozenset[str]) -> None:
        raise ValueError("broken hook")

    database.on_changes(broken)
    database.on_changes(told.append)
    with database.session() as session:
        db_api.append_change(session, "h1", "u1")
    assert told == [frozenset({"h1"})]
    with database.reader() as session:
        assert db_api.latest_change(session, "h1") > 0


def test_the_listener_backs_off_exponentially_up_to_a_cap() -> None:
    delays = [0.0]
    for _ in range(12):
        delays.append(next_backoff(delays[-1]))
    assert delays[1] == BACKOFF_FIRST_S
    assert delays[2] == 2 * BACKOFF_FIRST_S
    assert max(delays) == BACKOFF_MAX_S
    assert delays == sorted(delays)


def test_safety_net_rereads_are_spread_within_the_interval() -> None:
    delays = [recheck_delay(5.0) for _ in range(200)]
    assert all(2.5 <= delay <= 5.0 for delay in delays)
    assert max(delays) - min(delays) > 1.0  # not all at once


def test_a_wake_that_lands_as_the_timeout_fires_still_counts() -> None:
    """A loop that runs late (here: a callback blocking it past the timeout) may process the
    timeout after the wake: the waiter was woken, and says so."""

    async def scenario() -> bool:
        loop = asyncio.get_running_loop()
        waiter = Waiter("host-late", loop)
        waiter.arm()

        def late_loop() -> None:
            time.sleep(0.05)  # the 10 ms timeout is due once this returns
            loop.call_soon(waiter._wake)  # queued ahead of the timeout's callback

        loop.call_soon(late_loop)
        return await waiter.wait(0.01)

    assert asyncio.run(scenario()) is True
