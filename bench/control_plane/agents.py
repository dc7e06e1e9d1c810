"""Simulated filemem-compute agents: each registers a host, then long-polls its instances."""

from __future__ import annotations

import asyncio
import random
import time
import uuid as uuidlib
from collections.abc import Sequence

import httpx

from bench.control_plane.api import TOKEN

WATCH_S = 20.0  # [DEFAULT] api_watch_seconds
REGISTER_CONCURRENCY = 32
RETRIES = 5


class Agents:
    """N agents in one asyncio loop sharing one connection pool (one connection each)."""

    def __init__(self, url: str, hosts: Sequence[str]) -> None:
        limits = httpx.Limits(max_connections=len(hosts) + 8, max_keepalive_connections=None)
        self.http = httpx.AsyncClient(
            base_url=url,
            headers={"X-Auth-Token": TOKEN},
            timeout=WATCH_S + 60,
            limits=limits,
        )
        self.hosts = list(hosts)
        self.ready = 0
        self.polls = 0
        self.errors = 0
        self.expect: dict[str, asyncio.Event] = {}
        self.woke: dict[str, float] = {}
        self._register = asyncio.Semaphore(REGISTER_CONCURRENCY)
        self.go = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._agent(host)) for host in self.hosts]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http.aclose()

    async def _agent(self, host: str) -> None:
        async with self._register:
            await self._register_once(host)
        cursor = await self._first_cursor(host)
        self.ready += 1
        # Everyone registers first: polling agents would slow the others' registration.
        await self.go.wait()
        # Agents start at different times in real life: spread the long-polls' ends (all
        # at once they make a burst of snapshots every WATCH_S that the changes wait behind).
        await asyncio.sleep(random.uniform(0, WATCH_S))
        params = {"wait": WATCH_S}
        while True:
            try:
                response = await self.http.get(
                    f"/filemem/v1/hosts/{host}/instances", params={**params, "since": cursor}
                )
                response.raise_for_status()
            except httpx.HTTPError:
                self.errors += 1
                await asyncio.sleep(1)
                continue
            now = time.monotonic()
            self.polls += 1
            new = response.json()["cursor"]
            if new != cursor:
                cursor = new
                self.woke[host] = now
                event = self.expect.pop(host, None)
                if event is not None:
                    event.set()

    async def _register_once(self, host: str) -> None:
        body = {
            # The same provider every run: a known host is not a new one.
            "provider_uuid": str(uuidlib.uuid5(uuidlib.NAMESPACE_DNS, host)),
            "file_backed": True,
            "file_backed_memory_mb": 4096,
        }
        for attempt in range(RETRIES):
            try:
                response = await self.http.put(f"/filemem/v1/services/{host}", json=body)
                response.raise_for_status()
                return
            except httpx.TransportError:
                # A kept-alive connection the server closed meanwhile: as an agent, retry.
                if attempt == RETRIES - 1:
                    raise
                self.errors += 1

    async def _first_cursor(self, host: str) -> int:
        for attempt in range(RETRIES):
            try:
                response = await self.http.get(f"/filemem/v1/hosts/{host}/instances")
                response.raise_for_status()
                cursor: int = response.json()["cursor"]
                return cursor
            except httpx.TransportError:
                if attempt == RETRIES - 1:
                    raise
                self.errors += 1
        raise AssertionError("unreachable")

    async def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.ready < len(self.hosts):
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.ready} of {len(self.hosts)} agents registered")
            failed = [t for t in self._tasks if t.done()]
            if failed:
                failed[0].result()  # raises the agent's error
            await asyncio.sleep(0.2)
