"""The job bodies of `bench/run.sh bodies`, the same work as bench/bodies_jobs.mjs does in Node."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import aiohttp
import redis.asyncio as aioredis

BODIES = ("noop", "redis", "http", "sleep", "cpu")
SLEEP_S = 0.001
SPIN_NS = 200_000
COUNTER_KEY = "bench:bodies"

Body = Callable[[], Awaitable[None]]


async def make(name: str, concurrency: int) -> tuple[Body, Callable[[], Awaitable[None]]]:
    """The body `name` and its close; its clients are made here, once, as a handler module
    would at import (one redis-py client with its pool, one aiohttp session)."""

    async def nothing() -> None:
        return None

    if name == "noop":
        return nothing, nothing
    if name == "redis":
        # INCR on a second redis-server (not the queue's), through redis-py's asyncio client.
        side = aioredis.Redis.from_url(os.environ["BENCH_SIDE_REDIS_URL"])

        async def incr() -> None:
            await side.incr(COUNTER_KEY)

        return incr, side.aclose
    if name == "http":
        url = os.environ["BENCH_HTTP_URL"]
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency))

        async def get() -> None:
            async with session.get(url) as resp:
                await resp.read()

        return get, session.close
    if name == "sleep":

        async def sleep() -> None:
            await asyncio.sleep(SLEEP_S)

        return sleep, nothing
    if name == "cpu":

        async def spin() -> None:
            # On the loop, as a CPU-heavy async handler would be: a core for its whole length.
            end = time.monotonic_ns() + SPIN_NS
            while time.monotonic_ns() < end:
                pass

        return spin, nothing
    raise ValueError(f"unknown body {name!r}; one of {', '.join(BODIES)}")


async def warm(body: Body, concurrency: int) -> None:
    """`concurrency` calls at once: every connection the run will use is open before timing."""
    await asyncio.gather(*(body() for _ in range(concurrency)))


async def bare(body: Body, concurrency: int, jobs: int) -> None:
    """`jobs` calls of `body` by `concurrency` tasks, nothing else: the handler's own cost."""
    left = jobs

    async def lane() -> None:
        nonlocal left
        while left > 0:
            left -= 1
            await body()

    await asyncio.gather(*(lane() for _ in range(concurrency)))
