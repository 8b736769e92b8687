"""No job is lost: workers killed with SIGKILL or stopped with SIGTERM, Redis restarted."""

from __future__ import annotations

import jobfleet
import pytest
import redis.asyncio as aioredis
from waiting import until

pytestmark = pytest.mark.slow


async def runs(conn: aioredis.Redis, job_id: str) -> list[tuple[int, int]]:
    """(pid, attempt) of every execution of a job, in order."""
    raw = await conn.lrange(f"runs:{job_id}", 0, -1)
    return [tuple(map(int, r.split(":"))) for r in raw]


async def test_sigkill_with_50_in_flight_runs_them_all_again_on_another_worker(
    client, redis_url, spawn_worker
):
    first = spawn_worker(redis_url, env={"TEST_HANG": "1"}, queue={"concurrency": 50, "lease": 1.0})
    ids = await client.enqueue_many([{"name": "slow-unless-released"} for _ in range(50)])

    async def all_started() -> bool:
        return all([await client.conn.llen(f"runs:{i}") for i in ids])

    await until(all_started, what="50 jobs in flight on the first worker")
    assert (await client.inspect()).active == 50
    first.kill()

    second = spawn_worker(redis_url, queue={"concurrency": 50, "lease": 1.0})

    async def all_done() -> bool:
        return (await client.inspect()).completed == 50

    await until(all_done, what="the second worker to finish all 50 jobs")
    for job_id in ids:
        assert await runs(client.conn, job_id) == [(first.pid, 1), (second.pid, 2)]
        info = await client.get(job_id)
        assert info.state is jobfleet.JobState.COMPLETED and info.stalls == 1
    assert (await client.inspect()).recovered_total == 50


async def test_sigterm_finishes_what_it_can_and_releases_the_rest(client, redis_url, spawn_worker):
    worker = spawn_worker(
        redis_url, grace_period=2.0, shutdown_margin=0.5, queue={"concurrency": 100}
    )
    quick = await client.enqueue_many([{"name": "sleep", "payload": {"s": 0.2}}] * 50)
    slow = await client.enqueue_many([{"name": "sleep", "payload": {"s": 600}}] * 50)

    async def all_started() -> bool:
        return all([await client.conn.llen(f"runs:{i}") for i in quick + slow])

    await until(all_started, what="100 jobs in flight")
    assert worker.terminate() == 0, worker.output()

    for job_id in quick:
        info = await client.get(job_id)
        assert info.state is jobfleet.JobState.COMPLETED and info.attempt == 1
    for job_id in slow:
        info = await client.get(job_id)
        assert info.state is jobfleet.JobState.WAITING, info
        assert info.attempt == 0  # a released attempt is not counted
    stats = await client.inspect()
    assert (stats.active, stats.waiting, stats.workers) == (0, 50, 0)

    spawn_worker(redis_url, env={"TEST_NO_SLEEP": "1"}, queue={"concurrency": 100})

    async def all_done() -> bool:
        return (await client.inspect()).completed == 100

    await until(all_done, what="a second worker to complete every job")
    for job_id in slow:
        assert (await client.get(job_id)).attempt == 1


async def test_redis_restart_while_workers_run_loses_nothing(aof_redis, spawn_worker):
    async with jobfleet.Client(aof_redis.url, queue="q") as client:
        workers = [spawn_worker(aof_redis.url, queue={"concurrency": 20}) for _ in range(2)]
        ids = await client.enqueue_many([{"name": "sleep", "payload": {"s": 0.005}}] * 3000)

        async def some_done() -> bool:
            return (await client.inspect()).completed_total >= 500

        await until(some_done, what="workers to get going")
        aof_redis.restart()

        async def all_done() -> bool:
            try:
                return (await client.inspect()).completed == 3000
            except (aioredis.ConnectionError, ConnectionError):
                return False

        await until(all_done, timeout=180, what="every job to complete after the restart")
        stats = await client.inspect()
        assert (stats.waiting, stats.active, stats.delayed, stats.dead) == (0, 0, 0, 0)
        for job_id in ids[::50]:
            assert (await client.get(job_id)).state is jobfleet.JobState.COMPLETED
            assert await runs(client.conn, job_id)
        for worker in workers:  # none gave up (a LOADING reply once killed one)
            assert worker.proc.poll() is None, worker.output()
