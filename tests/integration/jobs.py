"""Handlers the integration tests run in real worker processes.

Every run is recorded in Redis (`runs:<job id>` gets the worker's pid) so tests can count
executions across processes, including ones killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import os

import jobfleet
import redis.asyncio as aioredis

_conn: aioredis.Redis | None = None


def conn() -> aioredis.Redis:
    global _conn
    if _conn is None:
        _conn = aioredis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    return _conn


async def record(job: jobfleet.JobContext) -> None:
    await conn().rpush(f"runs:{job.id}", f"{os.getpid()}:{job.attempt}")


@jobfleet.handler("sleep")
async def sleep(job: jobfleet.JobContext) -> dict[str, float]:
    """Sleep payload["s"] seconds; not at all with $TEST_NO_SLEEP set."""
    await record(job)
    seconds = 0.0 if os.environ.get("TEST_NO_SLEEP") else float(job.payload["s"])
    await asyncio.sleep(seconds)
    return {"slept": seconds}


@jobfleet.handler("slow-unless-released")
async def slow_unless_released(job: jobfleet.JobContext) -> str:
    """Hang on the first worker ($TEST_HANG); finish at once on the next."""
    await record(job)
    if os.environ.get("TEST_HANG"):
        await asyncio.sleep(3600)
    return "done"


@jobfleet.handler("record")
async def record_only(job: jobfleet.JobContext) -> None:
    await record(job)


@jobfleet.handler("nap")
async def nap(job: jobfleet.JobContext) -> None:
    """Sleep payload["s"] seconds without touching Redis (whatever $TEST_REDIS_URL names)."""
    await asyncio.sleep(float(job.payload["s"]))
