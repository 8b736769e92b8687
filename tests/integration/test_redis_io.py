"""How jobfleet's Redis connections put commands on the wire."""

from __future__ import annotations

import asyncio

import redis
from jobfleet.connection import connect


async def test_a_command_leaves_before_tasks_started_ahead_of_it_run(redis_url: str) -> None:
    # The worker starts a batch of handlers and then sends its next claim: the claim must be
    # on its way to Redis while they run. Python 3.11's redis-py sent it a loop turn later.
    conn = connect(redis_url)
    other = redis.Redis.from_url(redis_url)
    other.ping()
    await conn.ping()

    async def handler() -> None:
        other.set("first", "handler", nx=True)  # blocks the loop, as a busy handler would

    task = asyncio.create_task(handler())
    await conn.set("first", "command", nx=True)
    await task
    assert other.get("first") == b"command"
    other.close()
    await conn.aclose()
