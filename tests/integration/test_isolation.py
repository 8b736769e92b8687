"""Sync handlers past their timeout or cut short by SIGTERM never run twice at once.

Workers are real `jobfleet worker` processes; the `overrun` handler (jobs.py) counts the
concurrent executions of each job in Redis by itself, independently of jobfleet.
"""

from __future__ import annotations

from typing import Any

import jobfleet
import pytest
import redis.asyncio as aioredis
from waiting import alive, until

MODES = ["thread", "process"]
QUICK_RETRY = jobfleet.Backoff(base=0.01, cap=0.01)


def isolation(mode: str) -> dict[str, Any]:
    # "thread" is the default: leaving it out also runs these tests against older workers.
    return {} if mode == "thread" else {"isolation": mode}


async def strings(conn: aioredis.Redis, key: str) -> list[str]:
    return [str(v) for v in await conn.lrange(key, 0, -1)]


async def pids(conn: aioredis.Redis, job_id: str) -> list[int]:
    return [int(r.split(":")[0]) for r in await strings(conn, f"runs:{job_id}")]


@pytest.mark.parametrize("mode", MODES)
async def test_a_sync_handler_past_its_timeout_never_runs_twice_at_once(
    client, redis_url, spawn_worker, mode
):
    # Free slots and a lease much shorter than the overrun: the retry could start at once
    # beside the first attempt, or the lease expire under it, if either were let go.
    worker = spawn_worker(redis_url, queue={"concurrency": 4, "lease": 1.0, **isolation(mode)})
    job_id = await client.enqueue(
        "overrun", {"s": 3}, timeout=0.5, max_attempts=2, backoff=QUICK_RETRY
    )
    info = await client.wait(job_id, timeout=120)
    assert await strings(client.conn, f"overlap:{job_id}") == ["1", "1"], worker.output()
    assert info.state is jobfleet.JobState.DEAD, info
    assert info.error is not None and info.error.type == "JobTimeout"
    assert "timeout of 0.5 s" in info.error.message
    assert (info.attempt, info.stalls) == (2, 0)
    ended = await strings(client.conn, f"ended:{job_id}")
    if mode == "thread":
        assert len(ended) == 2  # each attempt failed only once its thread had returned
        assert "ran on for" in info.error.message
        assert "cannot be interrupted" in worker.output()
    else:
        assert ended == []  # killed at the timeout
        children = await pids(client.conn, job_id)
        assert len(set(children)) == 2 and worker.pid not in children
        assert not any(alive(pid) for pid in children)


async def test_a_sync_handler_past_its_timeout_is_marked_on_the_job_while_it_runs(
    client, redis_url, spawn_worker
):
    spawn_worker(redis_url)
    job_id = await client.enqueue("overrun", {"s": 3}, timeout=0.3, max_attempts=1)

    async def overdue() -> bool:
        info = await client.get(job_id)
        return info.state is jobfleet.JobState.ACTIVE and info.overdue_since is not None

    await until(overdue, what="the running job to be marked overdue")
    info = await client.wait(job_id, timeout=60)
    assert info.state is jobfleet.JobState.DEAD and info.overdue_since is None
    assert info.error is not None and info.error.type == "JobTimeout"


async def test_sigterm_never_releases_a_job_whose_thread_still_runs(
    client, redis_url, spawn_worker
):
    first = spawn_worker(redis_url, grace_period=2.0, shutdown_margin=1.0, queue={"lease": 1.0})
    job_id = await client.enqueue("overrun", {"s": 600})

    async def started() -> bool:
        return bool(await client.conn.llen(f"runs:{job_id}"))

    await until(started, what="the job to start")
    assert first.terminate() == 0, first.output()
    out = first.output()
    assert "waiting for 1 sync handlers that cannot be interrupted" in out, out
    assert "not releasing their jobs" in out, out
    info = await client.get(job_id)
    assert info.state is jobfleet.JobState.ACTIVE and info.attempt == 1, info  # not released

    # Its lease expires; another worker recovers it, after the first one's thread is gone.
    second = spawn_worker(redis_url, env={"TEST_NO_SLEEP": "1"}, queue={"lease": 1.0})
    info = await client.wait(job_id, timeout=120)
    assert info.state is jobfleet.JobState.COMPLETED and (info.attempt, info.stalls) == (2, 1)
    assert await pids(client.conn, job_id) == [first.pid, info.result["pid"]]
    assert info.result["pid"] == second.pid
    assert await strings(client.conn, f"overlap:{job_id}") == ["1", "1"]


async def test_sigterm_kills_the_process_of_a_job_and_releases_it(client, redis_url, spawn_worker):
    first = spawn_worker(
        redis_url, grace_period=2.0, shutdown_margin=1.0, queue={"isolation": "process"}
    )
    job_id = await client.enqueue("overrun", {"s": 600})

    async def started() -> bool:
        return bool(await client.conn.llen(f"runs:{job_id}"))

    await until(started, what="the job to start in a child process")
    [child] = await pids(client.conn, job_id)
    assert first.terminate() == 0, first.output()
    assert not alive(child)
    info = await client.get(job_id)
    assert info.state is jobfleet.JobState.WAITING and info.attempt == 0, info  # released

    spawn_worker(redis_url, env={"TEST_NO_SLEEP": "1"}, queue={"isolation": "process"})
    info = await client.wait(job_id, timeout=120)
    assert info.state is jobfleet.JobState.COMPLETED and info.attempt == 1
    assert await strings(client.conn, f"overlap:{job_id}") == ["1", "1"]
    assert len(await strings(client.conn, f"ended:{job_id}")) == 1


async def test_a_killed_worker_takes_its_child_processes_with_it(client, redis_url, spawn_worker):
    first = spawn_worker(redis_url, queue={"isolation": "process", "lease": 1.0})
    job_id = await client.enqueue("overrun", {"s": 600})

    async def started() -> bool:
        return bool(await client.conn.llen(f"runs:{job_id}"))

    await until(started, what="the job to start in a child process")
    [child] = await pids(client.conn, job_id)
    first.kill()

    async def orphan_gone() -> bool:
        return not alive(child)

    # An orphan would run on beside the attempt that recovers the job.
    await until(orphan_gone, what="the child to die with its worker")
    spawn_worker(redis_url, env={"TEST_NO_SLEEP": "1"}, queue={"isolation": "process"})
    info = await client.wait(job_id, timeout=120)
    assert info.state is jobfleet.JobState.COMPLETED and (info.attempt, info.stalls) == (2, 1)
    assert await strings(client.conn, f"overlap:{job_id}") == ["1", "1"]


async def test_a_process_isolated_handler_reports_progress_results_and_errors(
    client, redis_url, spawn_worker
):
    worker = spawn_worker(redis_url, queue={"isolation": "process", "concurrency": 2})
    ok = await client.enqueue("report", {"x": 1})
    fail = await client.enqueue("report", "fail", max_attempts=1)
    permanent = await client.enqueue("report", "permanent")

    info = await client.wait(ok, timeout=120)
    assert info.state is jobfleet.JobState.COMPLETED, info
    assert info.result["payload"] == {"x": 1} and info.result["pid"] != worker.pid
    assert (info.progress, info.progress_message, info.progress_stage) == (40, "halfway", "child")

    info = await client.wait(fail, timeout=120)
    assert info.state is jobfleet.JobState.DEAD and info.error is not None
    assert (info.error.type, info.error.message) == ("ValueError", "no good")
    assert "in report" in info.error.traceback and "ValueError: no good" in info.error.traceback

    info = await client.wait(permanent, timeout=120)
    assert info.state is jobfleet.JobState.DEAD and info.attempt == 1
    assert info.dead_reason == "permanent failure: never"
    assert info.error is not None and info.error.type == "PermanentError"


def test_process_isolation_needs_handler_modules(redis_url):
    from jobfleet.worker import Worker

    settings = jobfleet.WorkerSettings(redis_url=redis_url, queue={"isolation": "process"})
    with pytest.raises(jobfleet.ConfigError, match="needs `handlers`"):
        Worker(settings, jobfleet.Registry())


async def test_a_sync_batch_handler_runs_its_batch_in_one_child(client, redis_url, spawn_worker):
    worker = spawn_worker(redis_url, queue={"isolation": "process", "concurrency": 8})
    ids = await client.enqueue_many(
        [{"name": "halves", "payload": n, "max_attempts": 1} for n in range(4)]
    )
    infos = [await client.wait(job_id, timeout=120) for job_id in ids]
    for n, info in enumerate(infos):
        if n % 2:
            assert info.state is jobfleet.JobState.DEAD and info.error is not None
            assert (info.error.type, info.error.message) == ("ValueError", f"{n} is odd")
        else:
            assert info.state is jobfleet.JobState.COMPLETED
            assert info.result["half"] == n // 2 and info.result["pid"] != worker.pid
