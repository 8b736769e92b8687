"""Handlers the integration tests run in real worker processes.

Every run is recorded in Redis (`runs:<job id>` gets the worker's pid) so tests can count
executions across processes, including ones killed with SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time

import jobfleet
import redis
import redis.asyncio as aioredis
from jobfleet.process_pool import pid_alive

_conn: aioredis.Redis | None = None
_sync_conn: redis.Redis | None = None


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


def sync_conn() -> redis.Redis:
    global _sync_conn
    if _sync_conn is None:
        _sync_conn = redis.Redis.from_url(os.environ["TEST_REDIS_URL"])
    return _sync_conn


@jobfleet.handler("overrun")
def overrun(job: jobfleet.JobContext) -> dict[str, int]:
    """Sync: sleep payload["s"] seconds (not at all with $TEST_NO_SLEEP).

    Counts executions of the job without trusting jobfleet: each run registers in
    `live:<id>` while it runs and appends to `overlap:<id>` how many runs (of processes still
    alive) were registered when it began; `ended:<id>` lists the runs that returned.
    """
    r = sync_conn()
    me = f"{os.getpid()}:{threading.get_ident()}:{job.attempt}"
    r.sadd(f"live:{job.id}", me)
    live = [m for m in r.smembers(f"live:{job.id}") if pid_alive(int(m.split(b":")[0]))]
    r.rpush(f"overlap:{job.id}", len(live))
    r.rpush(f"runs:{job.id}", f"{os.getpid()}:{job.attempt}")
    try:
        time.sleep(0.0 if os.environ.get("TEST_NO_SLEEP") else float(job.payload["s"]))
    finally:
        r.srem(f"live:{job.id}", me)
    r.rpush(f"ended:{job.id}", me)
    return {"pid": os.getpid()}


@jobfleet.handler("report")
def report(job: jobfleet.JobContext) -> dict[str, object]:
    """Sync: report progress, then return the payload and pid, or raise as the payload says."""
    job.progress(40, "halfway", stage="child")
    if job.payload == "fail":
        raise ValueError("no good")
    if job.payload == "permanent":
        raise jobfleet.PermanentError("never")
    return {"pid": os.getpid(), "payload": job.payload}


@jobfleet.handler("halves", batch_size=4, max_wait=0.2)
def halves(jobs: list[jobfleet.JobContext]) -> list[object]:
    """Sync batch: half of each even payload; an odd one fails alone."""
    return [
        ValueError(f"{j.payload} is odd")
        if j.payload % 2
        else {"half": j.payload // 2, "pid": os.getpid()}
        for j in jobs
    ]


# A token-like string a handler might quote in an error: no log line may carry it.
LEAKY_TOKEN = "tok_9fQz2LmXv81KpRw"


@jobfleet.handler("leaky")
async def leaky(job: jobfleet.JobContext) -> None:
    """Fail with an exception whose message holds a secret-looking string."""
    raise ConnectionRefusedError(f"upstream refused Authorization: Bearer {LEAKY_TOKEN}")


@jobfleet.handler("group-probe")
async def group_probe(job: jobfleet.JobContext) -> None:
    """Count this job's group in flight (`probe:<g>`, its peaks in `peaks:<g>`), record the
    claim time Redis gave it (`starts:<g>`, the clock the group's rate limit is on) and the
    start order (`order`), sleep payload["s"], then count it out."""
    group, c = job.payload["g"], conn()
    await record(job)
    started = await c.hget(f"jf:{{q}}:job:{job.id}", "started_at")
    async with c.pipeline(transaction=False) as pipe:
        pipe.incr(f"probe:{group}")
        pipe.rpush(f"starts:{group}", started or b"")
        pipe.rpush("order", group)
        now_in_flight, _, _ = await pipe.execute()
    await c.rpush(f"peaks:{group}", now_in_flight)
    await asyncio.sleep(float(job.payload.get("s", 0)))
    await c.decr(f"probe:{group}")


@jobfleet.handler("loop-kind")
async def loop_kind(job: jobfleet.JobContext) -> None:
    """Record `<pid>:<module of the running loop's class>` ("asyncio.unix_events", "uvloop")
    in the list `loops`."""
    kind = type(asyncio.get_running_loop()).__module__
    await conn().rpush("loops", f"{os.getpid()}:{kind}")


@jobfleet.handler("span-state")
async def span_state(job: jobfleet.JobContext) -> None:
    """Record in `spans` whether this job runs inside a recording span; with payload
    "install", then set an OpenTelemetry SDK tracer provider (as an application that sets it
    up after the worker started would)."""
    from opentelemetry import trace

    recording = trace.get_current_span().is_recording()
    await conn().rpush("spans", f"{job.id}:{int(recording)}")
    if job.payload == "install":
        from opentelemetry.sdk.trace import TracerProvider

        trace.set_tracer_provider(TracerProvider())
