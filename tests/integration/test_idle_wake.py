"""An idle worker's wait ends when the next job becomes claimable, not at its idle interval.

Each test makes the idle interval an hour (IDLE_WAKE, the backstop) and expects the job within
a bound far below it: a worker that slept out its interval would fail, however slow the
machine. No test asserts a time; "never early" is checked on the Redis clock (`started_at`,
written by the claim that started the job, against `run_at`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import jobfleet
import jobfleet.worker
import pytest
import redis
from jobfleet.engine import ClaimPolicy, Engine, flow_json
from jobfleet.worker import Worker
from waiting import until

BOUND = 30.0  # seconds; the idle interval is 3600


@pytest.fixture
async def idle_worker(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Worker]]:
    """Start an in-process worker on queue "q" whose idle interval is an hour, and return
    once it waits in Redis (blocked in its BLPOP, no wake-up pending)."""
    monkeypatch.setattr(jobfleet.worker, "IDLE_WAKE", 3600.0)
    started: list[tuple[Worker, asyncio.Task[Any]]] = []

    async def start(registry: jobfleet.Registry, **queue: Any) -> Worker:
        worker = Worker(
            jobfleet.WorkerSettings(
                redis_url=redis_url, http_port=None, queue={"name": "q", **queue}
            ),
            registry,
        )
        started.append((worker, asyncio.create_task(worker.run())))
        await until(lambda: _idle(redis_url), timeout=BOUND, what="the worker to wait in Redis")
        return worker

    yield start  # type: ignore[misc]
    for worker, task in started:
        worker.stop()
        await asyncio.wait_for(task, timeout=60)


async def _idle(redis_url: str) -> bool:
    """Some client is blocked in Redis and no wake-up is waiting for it."""
    admin = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        blocked = any("b" in c["flags"] for c in admin.client_list())
        return blocked and admin.llen("jf:{q}:wake") == 0
    finally:
        admin.close()


def _recorder(started: list[int]) -> jobfleet.Registry:
    registry = jobfleet.Registry()

    @registry.handler("x")
    async def x(job: jobfleet.JobContext) -> None:
        started.append(job.attempt)

    return registry


async def _done_in_time(client: jobfleet.Client, job_id: str) -> jobfleet.JobInfo:
    info = await client.wait(job_id, timeout=BOUND)
    assert info.state == "completed", info
    assert info.started_at is not None
    assert info.started_at >= (info.run_at or info.enqueued_at), "started early (Redis clock)"
    return info


async def test_a_delayed_job_enqueued_while_the_worker_is_idle_starts(client, idle_worker):
    # Before: enqueue woke nobody for a delayed job, so the worker slept out its interval.
    await idle_worker(_recorder(started := []))
    job_id = await client.enqueue("x", delay=1.0)
    await _done_in_time(client, job_id)
    assert started == [1]


async def test_a_sooner_delayed_job_cuts_a_wait_planned_for_a_later_one(
    client, idle_worker, redis_url
):
    await idle_worker(_recorder(started := []))
    later = await client.enqueue("x", delay=600)
    # The worker has taken in the later job (or never heard of it) and waits again.
    await until(lambda: _idle(redis_url), timeout=BOUND, what="the worker to wait again")
    sooner = await client.enqueue("x", delay=1.0)
    await _done_in_time(client, sooner)
    assert (await client.get(later)).state == "delayed"
    assert started == [1]


async def test_a_retry_scheduled_while_the_worker_waits_starts_after_its_backoff(
    client, idle_worker
):
    # The failure is acknowledged by the main loop's claim while the waker already waits for
    # new work with the free slots: the waker must still wake for the retry. The lease is
    # long so that no lease expiry ends the wait either.
    registry = jobfleet.Registry()
    attempts: list[int] = []

    @registry.handler("flaky")
    async def flaky(job: jobfleet.JobContext) -> int:
        attempts.append(job.attempt)
        if job.attempt == 1:
            await asyncio.sleep(0.2)  # the waker is back in its wait by now
            raise ValueError("transient")
        return job.attempt

    await idle_worker(
        registry, lease=600, backoff={"kind": "fixed", "base": 1.0, "cap": 1.0, "jitter": "none"}
    )
    job_id = await client.enqueue("flaky")
    info = await _done_in_time(client, job_id)
    assert info.result == 2 and attempts == [1, 2]


async def test_a_job_held_by_the_rate_limit_starts_when_the_window_frees(
    client, idle_worker, redis_url
):
    # Another worker takes the window's one start and holds the next job; the idle worker
    # must wake for the end of that hold, which its own claims never saw. (Paused while the
    # jobs arrive, so that the idle worker's claim cannot take them first, and unpaused by a
    # raw write: Client.resume() would wake the idle worker, which would then take them.)
    limit = jobfleet.RateLimit(max=1, period=2.0)
    await idle_worker(_recorder(started := []), rate_limit=limit.model_dump())
    await client.pause()
    first, held = await client.enqueue("x"), await client.enqueue("x")
    await until(lambda: _idle(redis_url), timeout=BOUND, what="the worker to wait again")
    conn = jobfleet.connection.connect(redis_url)
    await conn.hset("jf:{q}:meta", "paused", "0")
    policy = ClaimPolicy(
        lease_ms=600_000,  # the other worker keeps the first job past the end of the test
        worker_ttl_ms=600_000,
        max_attempts=3,
        poison_after=5,
        flow=flow_json(limit, None),
    )
    taken = await Engine(conn, "q").claim(token="other:1", n=2, worker_id="other", policy=policy)
    await conn.aclose()
    assert [job.id for job in taken.jobs] == [first]
    assert (await client.inspect()).held == 1
    await _done_in_time(client, held)
    assert started == [1]


async def test_resume_wakes_an_idle_worker_for_the_jobs_that_waited(client, idle_worker, redis_url):
    # Before: resume only cleared the flag, and the worker, back asleep after the wake-up the
    # enqueue rang while the queue was paused, slept out its interval.
    await idle_worker(_recorder(started := []))
    await client.pause()
    job_id = await client.enqueue("x")
    await until(lambda: _idle(redis_url), timeout=BOUND, what="the worker to wait again")
    assert (await client.get(job_id)).state == "waiting"
    await client.resume()
    await _done_in_time(client, job_id)
    assert started == [1]


async def test_resume_of_an_empty_queue_rings_nobody(client, idle_worker, redis_url):
    await idle_worker(_recorder([]))
    await client.pause()
    await client.resume()
    assert await _idle(redis_url)  # no wake-up left waiting: nothing to claim


async def test_delayed_jobs_start_on_time_never_early(client, idle_worker):
    await idle_worker(_recorder(started := []))
    ids = [await client.enqueue("x", i, delay=0.1 + (i % 7) * 0.15) for i in range(21)]
    for job_id in ids:
        await _done_in_time(client, job_id)
    assert len(started) == 21
