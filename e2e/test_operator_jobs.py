"""Handlers that worker pods of the operator e2e tests import (`e2e.test_operator_jobs`).

Pods run as processes of this checkout (PYTHONPATH is the repo root), so the module is
importable by name; it holds no tests.
"""

from __future__ import annotations

import asyncio
from typing import Any

import jobfleet


@jobfleet.handler("nap")
async def nap(job: jobfleet.JobContext) -> None:
    """Sleep payload["s"] seconds: work that takes time without taking CPU."""
    payload: dict[str, Any] = job.payload or {}
    await asyncio.sleep(float(payload.get("s", 0)))


_starts: Any = None  # this pod's connection for counting starts (opened on first use)


@jobfleet.handler("counted-nap")
async def counted_nap(job: jobfleet.JobContext) -> None:
    """`nap`, but every start is counted in Redis (`e2e:starts:<queue>`, one field per job)
    before the sleep, by the handler itself: whatever the engine records, a job that was
    interrupted and run again shows 2 here."""
    import json
    import os

    import redis.asyncio as aioredis

    global _starts
    if _starts is None:
        settings = json.loads(os.environ.get("JOBFLEET_SETTINGS") or "{}")
        _starts = aioredis.from_url(os.environ.get("JOBFLEET_REDIS_URL") or settings["redis_url"])
    await _starts.hincrby(f"e2e:starts:{job.queue}", job.id, 1)
    payload: dict[str, Any] = job.payload or {}
    await asyncio.sleep(float(payload.get("s", 0)))
