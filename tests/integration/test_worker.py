"""The worker runtime in-process: handlers, timeouts, progress, unknown names, HTTP endpoints."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import aiohttp
import jobfleet
import pytest
import redis
from jobfleet.worker import Worker
from waiting import until


async def test_async_and_sync_handlers_with_results_and_progress(client, run_worker):
    registry = jobfleet.Registry()
    threads: list[str] = []

    @registry.handler("async")
    async def async_handler(job: jobfleet.JobContext) -> dict[str, Any]:
        await job.progress(40, "halfway there", stage="render")
        return {"got": job.payload, "attempt": job.attempt}

    @registry.handler("sync")
    def sync_handler(job: jobfleet.JobContext) -> str:
        threads.append(threading.current_thread().name)
        job.progress(75, "nearly", stage="upload")
        return f"hello {job.payload}"

    run_worker(registry)
    a = await client.enqueue("async", [1, 2])
    s = await client.enqueue("sync", "world")
    info_a = await client.wait(a, timeout=30)
    info_s = await client.wait(s, timeout=30)
    assert info_a.result == {"got": [1, 2], "attempt": 1}
    assert (info_a.progress, info_a.progress_message, info_a.progress_stage) == (
        40,
        "halfway there",
        "render",
    )
    assert info_s.result == "hello world" and info_s.progress == 75
    assert threads and threads[0].startswith("jobfleet-job")


async def test_sync_handler_cannot_block_lease_renewal(client, run_worker):
    registry = jobfleet.Registry()
    release = threading.Event()

    @registry.handler("blocking")
    def blocking(job: jobfleet.JobContext) -> None:
        release.wait(60)

    worker = run_worker(registry, queue={"lease": 0.3})
    job_id = await client.enqueue("blocking")
    await until(lambda: _active(client, 1), what="the job to start")
    # Many lease periods pass while the handler blocks its thread: the lease keeps being
    # renewed, so the job is never recovered and never runs twice.
    await asyncio.sleep(1.5)
    release.set()
    info = await client.wait(job_id, timeout=30)
    assert info.state is jobfleet.JobState.COMPLETED and info.stalls == 0 and info.attempt == 1
    assert worker.counters.lost == 0


async def _active(client: jobfleet.Client, n: int) -> bool:
    return (await client.inspect()).active == n


async def test_unknown_handler_is_dead_lettered_with_the_reason(client, run_worker):
    run_worker(jobfleet.Registry())
    job_id = await client.enqueue("nobody-handles-this", {"x": 1})
    info = await client.wait(job_id, timeout=30)
    assert info.state is jobfleet.JobState.DEAD and info.attempt == 1
    assert info.dead_reason == "unknown handler 'nobody-handles-this'"
    assert info.error.type == "UnknownHandler"


async def test_job_over_its_timeout_is_cancelled_and_counts_as_a_failure(client, run_worker):
    registry = jobfleet.Registry()
    cancelled = []

    @registry.handler("slow")
    async def slow(job: jobfleet.JobContext) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.append(job.attempt)
            raise

    run_worker(registry)
    job_id = await client.enqueue(
        "slow", timeout=0.1, max_attempts=2, backoff=jobfleet.Backoff(base=0.01, cap=0.01)
    )
    info = await client.wait(job_id, timeout=30)
    assert info.state is jobfleet.JobState.DEAD and info.attempt == 2
    assert info.error.type == "JobTimeout"
    assert "timeout of 0.1 s" in info.error.message
    assert cancelled == [1, 2]


async def test_retry_later_overrides_the_backoff(client, run_worker):
    registry = jobfleet.Registry()

    @registry.handler("rate-limited")
    async def limited(job: jobfleet.JobContext) -> int:
        if job.attempt == 1:
            raise jobfleet.RetryLater("429 from upstream", delay=0.3)
        return job.attempt

    run_worker(registry, queue={"backoff": {"base": 0, "cap": 0}})
    job_id = await client.enqueue("rate-limited")
    info = await client.wait(job_id, timeout=30)
    assert info.result == 2
    # The retry was scheduled 0.3 s after the failure (both on the Redis clock).
    assert info.started_at - info.run_at >= 0 and info.run_at - info.enqueued_at >= 0.3


async def test_delayed_jobs_never_start_early(client, run_worker):
    registry = jobfleet.Registry()

    @registry.handler("x")
    async def x(job: jobfleet.JobContext) -> None:
        return None

    run_worker(registry)
    ids = [await client.enqueue("x", i, delay=(i % 5) * 0.1) for i in range(20)]
    for job_id in ids:
        info = await client.wait(job_id, timeout=30)
        assert info.started_at >= (info.run_at or info.enqueued_at)


async def test_result_that_is_not_json_dead_letters(client, run_worker):
    registry = jobfleet.Registry()

    @registry.handler("x")
    async def x(job: jobfleet.JobContext) -> object:
        return object()

    run_worker(registry)
    info = await client.wait(await client.enqueue("x"), timeout=30)
    assert info.state is jobfleet.JobState.DEAD
    assert "not JSON" in (info.dead_reason or "")


async def test_health_readiness_and_metrics(client, run_worker):
    registry = jobfleet.Registry()

    @registry.handler("x")
    async def x(job: jobfleet.JobContext) -> None:
        return None

    worker = run_worker(registry, http_port=0, http_host="127.0.0.1")
    await until(lambda: _serving(worker), what="the HTTP port")
    await client.wait(await client.enqueue("x"), timeout=30)
    base = f"http://127.0.0.1:{worker.http.port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as r:
            assert r.status == 200
        async with http.get(f"{base}/readyz") as r:
            assert r.status == 200
        async with http.get(f"{base}/metrics") as r:
            text = await r.text()
        assert 'jobfleet_jobs_total{handler="x",outcome="completed",queue="q"}' in text
        assert "jobfleet_job_duration_seconds_bucket" in text
        assert 'jobfleet_jobs_in_flight{queue="q"}' in text
        worker.stop(grace=5)
        async with http.get(f"{base}/readyz") as r:
            assert r.status == 503  # draining: take no new traffic


async def _serving(worker: Worker) -> bool:
    return worker.http is not None and worker.http.port != 0


def test_sync_client(redis_url):
    with jobfleet.SyncClient(redis_url, queue="q") as client:
        job_id = client.enqueue("x", {"a": 1}, priority="high")
        info = client.get(job_id)
        assert info.priority is jobfleet.Priority.HIGH and info.payload == {"a": 1}
        assert client.inspect().waiting == 1
        assert client.dlq.count() == 0
        with pytest.raises(jobfleet.JobNotFound):
            client.get("missing")


async def test_workers_reports_each_live_worker_and_its_jobs(client, run_worker):
    registry = jobfleet.Registry()
    release = asyncio.Event()

    @registry.handler("hold")
    async def hold(job: jobfleet.JobContext) -> None:
        await release.wait()

    busy = run_worker(registry, queue={"concurrency": 3})
    await client.enqueue_many([{"name": "hold"}] * 3)
    await until(lambda: _active(client, 3), what="three jobs on the busy worker")
    idle = run_worker(registry)
    await until(lambda: _registered(client, 2), what="the idle worker to register")
    workers = await client.workers()
    assert {w.id: w.in_flight for w in workers.values()} == {busy.id: 3, idle.id: 0}
    assert not any(w.draining for w in workers.values())
    release.set()


async def _registered(client: jobfleet.Client, n: int) -> bool:
    return len(await client.workers()) == n


async def test_an_idle_worker_stops_at_once_and_gives_back_what_its_wait_claimed(
    client, redis_url, monkeypatch
):
    # An idle worker waits in Redis with a claim queued behind its wait. Without a way to cut
    # that wait short, stop() would sit out the idle interval (an hour here) and time out.
    monkeypatch.setattr(jobfleet.worker, "IDLE_WAKE", 3600.0)
    registry = jobfleet.Registry()

    @registry.handler("report")
    async def report(job: jobfleet.JobContext) -> None:
        raise AssertionError("a stopping worker must not start jobs")

    worker = Worker(
        jobfleet.WorkerSettings(redis_url=redis_url, http_port=None, queue={"name": "q"}),
        registry,
    )
    task = asyncio.create_task(worker.run())
    admin = redis.Redis.from_url(redis_url, decode_responses=True)

    async def waiting_in_redis() -> bool:
        return any(c["cmd"] == "blpop" for c in admin.client_list())

    await until(waiting_in_redis, timeout=30, what="the worker's wait in Redis")

    # The job arrives, and the queued claim takes it, while this test holds the event loop:
    # the worker only sees its claim after it was told to stop.
    ids: list[str] = []

    def enqueue() -> None:
        sync = jobfleet.SyncClient(redis_url, queue="q")
        ids.append(sync.enqueue("report", {}))
        sync.close()

    enqueuer = threading.Thread(target=enqueue)
    enqueuer.start()
    enqueuer.join()
    worker.stop()
    counters = await asyncio.wait_for(task, timeout=60)

    assert counters.released == 1 and counters.completed == 0
    info = await client.get(ids[0])
    assert (info.state, info.attempt) == ("waiting", 0)
    admin.close()
