"""Cancelling running jobs: the worker learns it through its wake list or its lease renewal,
stops the handler, and the job ends cancelled — never retried, never dead-lettered."""

from __future__ import annotations

import asyncio
import os
import threading

import jobfleet
from jobfleet.keys import QueueKeys
from waiting import until

KEYS = QueueKeys("q")


def cancellable(registry: jobfleet.Registry, seen: list[str]) -> None:
    @registry.handler("forever")
    async def forever(job: jobfleet.JobContext) -> None:
        seen.append("started")
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise


async def cancel_when_started(client: jobfleet.Client, job_id: str, seen: list[str]) -> None:
    async def started() -> bool:
        return "started" in seen

    await until(started, what="the handler to start")
    assert await client.cancel(job_id) == "cancelling"
    assert (await client.get(job_id)).state is jobfleet.JobState.CANCELLED  # final at once


async def test_an_idle_blocked_worker_learns_of_a_cancel_through_its_wake_list(client, run_worker):
    registry = jobfleet.Registry()
    seen: list[str] = []
    cancellable(registry, seen)
    # A long lease: its first renewal (at a third of it) comes long after the wait below
    # gives up, so only the wake list can tell the worker in time. A free slot keeps the
    # worker's waker blocked in BLPOP.
    worker = run_worker(registry, queue={"concurrency": 2, "lease": 600.0})
    job_id = await client.enqueue("forever", None, max_attempts=5)
    await cancel_when_started(client, job_id, seen)

    async def stopped() -> bool:
        return worker.counters.cancelled == 1

    await until(stopped, timeout=120, what="the handler to be cancelled")
    assert seen == ["started", "cancelled"]
    info = await client.get(job_id)
    assert (info.state, info.attempt, info.error) == (jobfleet.JobState.CANCELLED, 1, None)
    stats = await client.inspect()
    assert (stats.waiting, stats.delayed, stats.active, stats.dead) == (0, 0, 0, 0)
    assert stats.failed_total == 0 and worker.counters.failed == 0
    assert worker.in_flight == 0
    # the worker goes on working
    done = await client.enqueue("noop-missing-handler", None)
    assert (await client.wait(done, timeout=60)).state is jobfleet.JobState.DEAD


async def test_a_busy_worker_learns_of_a_cancel_through_its_lease_renewal(client, run_worker):
    registry = jobfleet.Registry()
    seen: list[str] = []
    cancellable(registry, seen)
    # One slot, taken: no wait for work is pending, so the wake list is not watched.
    worker = run_worker(registry, queue={"concurrency": 1, "lease": 3.0})
    job_id = await client.enqueue("forever", None)
    await cancel_when_started(client, job_id, seen)

    async def stopped() -> bool:
        return worker.counters.cancelled == 1

    await until(stopped, what="the renewal to cancel the handler")
    assert seen == ["started", "cancelled"]
    info = await client.get(job_id)
    assert (info.state, info.attempt) == (jobfleet.JobState.CANCELLED, 1)
    assert worker.counters.failed == worker.counters.completed == 0


async def test_a_sync_handler_runs_to_its_end_and_its_result_is_dropped(client, run_worker):
    registry = jobfleet.Registry()
    go = threading.Event()
    started = threading.Event()

    @registry.handler("blocking")
    def blocking(job: jobfleet.JobContext) -> str:
        started.set()
        go.wait(120)
        return "finished"

    worker = run_worker(registry, queue={"concurrency": 2, "lease": 600.0})
    job_id = await client.enqueue("blocking", None)

    async def is_started() -> bool:
        return started.is_set()

    await until(is_started, what="the thread to start")
    assert await client.cancel(job_id) == "cancelling"

    async def marked() -> bool:
        running = worker.slots.running.get(job_id)
        return running is not None and running.cancelled

    await until(marked, what="the worker to learn of the cancel")
    assert worker.in_flight == 1  # the thread still runs and keeps its slot
    go.set()

    async def ended() -> bool:
        return worker.counters.cancelled == 1

    await until(ended, what="the thread to return")
    info = await client.get(job_id)
    assert (info.state, info.result) == (jobfleet.JobState.CANCELLED, None)


async def test_a_cancel_kills_a_process_isolated_handler(client, redis_url, spawn_worker):
    spawn_worker(redis_url, queue={"isolation": "process", "lease": 600.0})
    job_id = await client.enqueue("overrun", {"s": 600})

    async def started() -> bool:
        return bool(await client.conn.llen(f"runs:{job_id}"))

    await until(started, timeout=120, what="the job to start in a child process")
    [run] = [str(r) for r in await client.conn.lrange(f"runs:{job_id}", 0, -1)]
    child = int(run.split(":")[0])
    assert await client.cancel(job_id) == "cancelling"

    async def child_gone() -> bool:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return True
        return False

    await until(child_gone, timeout=120, what="the child process to be killed")
    assert await client.conn.llen(f"ended:{job_id}") == 0  # killed, not returned
    assert (await client.get(job_id)).state is jobfleet.JobState.CANCELLED


async def test_a_worker_killed_during_a_cancel_leaves_the_job_cancelled(
    client, redis_url, spawn_worker
):
    first = spawn_worker(redis_url, env={"TEST_HANG": "1"}, queue={"lease": 1.0})
    job_id = await client.enqueue("slow-unless-released", None)

    async def started() -> bool:
        return bool(await client.conn.llen(f"runs:{job_id}"))

    await until(started, what="the job to start")
    assert await client.cancel(job_id) == "cancelling"
    first.kill()
    # Another worker recovers expired leases: this job has none any more.
    spawn_worker(redis_url, queue={"lease": 1.0})
    later = [await client.enqueue("record", None) for _ in range(3)]
    for other in later:
        assert (await client.wait(other, timeout=120)).state is jobfleet.JobState.COMPLETED
    stats = await client.inspect()
    assert stats.recovered_total == 0 and stats.active == 0
    info = await client.get(job_id)
    assert (info.state, info.attempt, info.stalls) == (jobfleet.JobState.CANCELLED, 1, 0)
    assert await client.conn.llen(f"runs:{job_id}") == 1  # never run again
    assert await client.conn.zscore(KEYS.active, job_id) is None
