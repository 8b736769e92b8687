"""10,000 jobs through flaky and broken handlers: every one ends completed or dead-lettered."""

from __future__ import annotations

import asyncio
import random
import sys
from collections import Counter

import jobfleet
import pytest
from jobfleet.worker import Worker
from waiting import until

pytestmark = pytest.mark.slow

N = 10_000
MAX_ATTEMPTS = 5


class CardDeclined(jobfleet.PermanentError):
    pass


def broken(job_id: str) -> bool:
    """5 % of jobs can never succeed until the handler is fixed."""
    return int(job_id[:8], 16) % 20 == 0


async def test_flaky_and_broken_handlers_then_dlq_replay(redis_url):
    fixed = False
    executions: Counter[str] = Counter()
    registry = jobfleet.Registry()

    @registry.handler("charge")
    async def charge(job: jobfleet.JobContext) -> dict[str, int]:
        executions[job.id] += 1
        assert job.attempt <= MAX_ATTEMPTS
        if broken(job.id) and not fixed:
            raise CardDeclined(f"card {job.payload['card']} declined")
        # 30 % of attempts fail transiently, decided per (job, attempt) so it is reproducible.
        if not fixed and random.Random(f"{job.id}:{job.attempt}").random() < 0.3:
            raise ConnectionResetError("payment gateway reset the connection")
        return {"charged": job.payload["card"]}

    settings = jobfleet.WorkerSettings(
        redis_url=redis_url,
        http_port=None,
        queue=jobfleet.QueueSettings(
            name="payments",
            concurrency=100,
            max_attempts=MAX_ATTEMPTS,
            backoff=jobfleet.Backoff(base=0.005, cap=0.05),
            retention=jobfleet.Retention(completed_count=100_000),
        ),
    )
    client = jobfleet.Client(redis_url, queue="payments")
    workers = [Worker(settings, registry) for _ in range(2)]
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        ids = await client.enqueue_many(
            [{"name": "charge", "payload": {"card": i}} for i in range(N)]
        )

        async def settled() -> bool:
            s = await client.inspect()
            return s.completed + s.dead == N

        await until(settled, timeout=240, what="every job to complete or dead-letter")
        stats = await client.inspect()
        assert (stats.waiting, stats.delayed, stats.active) == (0, 0, 0)
        assert max(executions.values()) <= MAX_ATTEMPTS
        assert sum(executions.values()) == stats.completed_total + stats.failed_total

        dead = set()
        for job_id in ids:
            info = await client.get(job_id)
            assert info.attempt <= MAX_ATTEMPTS
            assert info.attempt == executions[job_id]
            if info.state is jobfleet.JobState.DEAD:
                dead.add(job_id)
                assert info.payload == {"card": ids.index(job_id)}
                assert info.error is not None and info.error.traceback
                assert info.error.type in ("CardDeclined", "ConnectionResetError")
                assert info.error.type in info.error.traceback
                assert info.error.message in info.error.traceback
                assert info.finished_at >= info.started_at >= info.enqueued_at > 0
                if info.error.type == "CardDeclined":
                    assert info.attempt == 1
                    assert info.dead_reason == f"permanent failure: {info.error.message}"
                else:
                    assert info.attempt == MAX_ATTEMPTS
                    assert info.dead_reason == "attempts exhausted (5 of 5)"
            else:
                assert info.state is jobfleet.JobState.COMPLETED
                assert not broken(job_id)
        assert {i for i in ids if broken(i)} <= dead
        assert stats.dead == len(dead) and len(dead) >= N * 0.04

        fixed = True
        replay = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "jobfleet",
            "--redis-url",
            redis_url,
            "dlq",
            "replay",
            "--queue",
            "payments",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await replay.communicate()
        assert replay.returncode == 0, err.decode()
        assert out.decode().strip() == f"replayed {len(dead)} dead letters"

        async def all_completed() -> bool:
            return (await client.inspect()).completed == N

        await until(all_completed, timeout=120, what="the replayed jobs to complete")
        assert (await client.inspect()).dead == 0
        for job_id in dead:
            info = await client.get(job_id)
            assert info.state is jobfleet.JobState.COMPLETED and info.attempt == 1
    finally:
        for w in workers:
            w.stop()
        await asyncio.gather(*tasks)
        await client.aclose()
