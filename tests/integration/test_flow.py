"""Flow control enforced in Redis for the whole fleet: rate limits, circuit breakers, pause."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import jobfleet
import pytest
import redis.asyncio as aioredis
from fleet import recorder, start_workers, stop_workers
from jobfleet import metrics
from waiting import until
from windows import max_in_window

pytestmark = pytest.mark.slow


async def test_rate_limit_per_key_across_four_workers(client, redis_url):
    registry = jobfleet.Registry()

    @registry.handler("call-api")
    async def call_api(job: jobfleet.JobContext) -> None:
        return None

    settings = jobfleet.WorkerSettings(
        redis_url=redis_url,
        http_port=None,
        queue=jobfleet.QueueSettings(
            name="q",
            concurrency=100,
            rate_limit=jobfleet.RateLimit(max=50, period=1.0, key_field="tenant"),
        ),
    )
    workers, tasks = await start_workers(4, settings, registry)
    try:
        a = await client.enqueue_many(
            [{"name": "call-api", "payload": {"tenant": "acme", "n": i}} for i in range(600)]
        )
        b = await client.enqueue_many(
            [{"name": "call-api", "payload": {"tenant": "globex", "n": i}} for i in range(400)]
        )

        async def done() -> bool:
            return (await client.inspect()).completed == 1000

        await until(done, timeout=180, what="1,000 rate-limited jobs to complete")
        starts: dict[str, list[int]] = defaultdict(list)
        for tenant, ids in (("acme", a), ("globex", b)):
            for job_id in ids:
                info = await client.get(job_id)
                assert info.attempt == 1 and info.error is None
                starts[tenant].append(round(info.started_at * 1000))
        # Both times are from the Redis clock, at the instant the script admitted the job.
        assert max_in_window(starts["acme"], 1000) <= 50
        assert max_in_window(starts["globex"], 1000) <= 50
        # The second key ran alongside the first rather than after it.
        assert min(starts["globex"]) < sorted(starts["acme"])[100]
        assert max(starts["globex"]) < max(starts["acme"])
        stats = await client.inspect()
        assert stats.failed_total == 0 and stats.dead == 0 and stats.held == 0
        # Held jobs were never claimed: 1,000 jobs, 1,000 claims.
        assert sum(w.counters.completed for w in workers) == 1000
    finally:
        await stop_workers(workers, tasks)


async def test_jobs_over_the_limit_show_as_held_not_waiting(client, redis_url):
    registry = jobfleet.Registry()

    @registry.handler("x")
    async def x(job: jobfleet.JobContext) -> None:
        return None

    settings = jobfleet.WorkerSettings(
        redis_url=redis_url,
        http_port=None,
        queue=jobfleet.QueueSettings(name="q", rate_limit=jobfleet.RateLimit(max=5, period=60)),
    )
    workers, tasks = await start_workers(1, settings, registry)
    try:
        await client.enqueue_many([{"name": "x"}] * 20)

        async def settled() -> bool:
            s = await client.inspect()
            return s.completed == 5 and s.held == 15

        await until(settled, what="5 jobs done and 15 held by the limit")
        s = await client.inspect()
        assert s.waiting == 0 and s.failed_total == 0
    finally:
        await stop_workers(workers, tasks)


async def test_circuit_breaker_trips_fleet_wide_holds_jobs_then_recovers(client, redis_url):
    broken = True
    calls: list[dict[str, Any]] = []
    registry = jobfleet.Registry()
    conn = aioredis.Redis.from_url(redis_url, decode_responses=True)

    @registry.handler("payments-api")
    async def payments(job: jobfleet.JobContext) -> str:
        claimed = int(await conn.hget(client.engine().keys.job(job.id), "started_at"))
        calls.append({"claimed": claimed, "ok": not broken})
        if broken:
            raise ConnectionRefusedError("payments API is down")
        return "charged"

    @registry.handler("other")
    async def other(job: jobfleet.JobContext) -> str:
        return "fine"

    settings = jobfleet.WorkerSettings(
        redis_url=redis_url,
        http_port=None,
        queue=jobfleet.QueueSettings(
            name="q",
            concurrency=2,
            max_attempts=10,
            lease=0.9,  # renewals (which also report circuit states) every 0.3 s
            backoff=jobfleet.Backoff(base=0.05, cap=0.2),
            circuit_breaker=jobfleet.CircuitBreaker(
                scope="handler",
                failure_threshold=5,
                window=60,
                reset_timeout=3,
                half_open_probes=1,
            ),
        ),
    )
    workers, tasks = await start_workers(3, settings, registry)
    try:
        await client.enqueue_many([{"name": "payments-api", "payload": i} for i in range(200)])

        async def tripped() -> bool:
            c = (await client.inspect()).circuits.get("payments-api")
            return c is not None and c.state == "open"

        await until(tripped, what="the breaker to open")
        # Fix the dependency while the circuit is open, well inside the reset timeout, so
        # that the first probe after it succeeds.
        broken = False
        raw = await conn.hgetall(client.engine().keys.cb)
        opened_at, reopens_at = int(raw["payments-api:opened_at"]), int(raw["payments-api:until"])
        gauge = metrics.CIRCUIT.labels("q", "payments-api")

        async def reported() -> bool:
            return gauge._value.get() == 1.0

        await until(reported, what="workers to report the open circuit in their metrics")
        # Other handlers keep flowing while this one's circuit is open.
        assert (await client.wait(await client.enqueue("other"), timeout=30)).result == "fine"

        async def drained() -> bool:
            return (await client.inspect()).completed == 201

        await until(drained, timeout=120, what="the backlog to drain after the probe")
        stats = await client.inspect()
        assert stats.dead == 0
        assert stats.circuits["payments-api"].state == "closed"
        assert stats.circuits["payments-api"].trips == 1
        failures = [c for c in calls if not c["ok"]]
        assert len(failures) >= 5
        # No attempt was admitted while the circuit was open, by any of the three workers.
        assert not [c for c in calls if opened_at < c["claimed"] < reopens_at]
        # The first call after the reset was a single probe; everything after it succeeded.
        after = sorted((c for c in calls if c["claimed"] >= reopens_at), key=lambda c: c["claimed"])
        assert after and all(c["ok"] for c in after)
    finally:
        await stop_workers(workers, tasks)
        await conn.aclose()


async def test_pause_stops_new_starts_and_resume_drains(client, redis_url):
    registry, started = recorder("x")
    settings = jobfleet.WorkerSettings(
        redis_url=redis_url, http_port=None, queue=jobfleet.QueueSettings(name="q")
    )
    workers, tasks = await start_workers(2, settings, registry)
    try:
        await client.wait(await client.enqueue("x"), timeout=30)
        await client.pause()
        ids = await client.enqueue_many([{"name": "x"}] * 50)  # enqueue keeps accepting
        # The enqueue wakes the idle workers; give them a check period to (not) start anything.
        await asyncio.sleep(1.0)
        s = await client.inspect()
        assert s.paused and s.waiting == 50 and s.active == 0
        assert not set(ids) & set(started)
        await client.resume()

        async def drained() -> bool:
            return (await client.inspect()).completed == 51

        await until(drained, what="resume to drain the queue")
    finally:
        await stop_workers(workers, tasks)


async def test_batch_handler_gets_full_batches_and_retries_a_failed_job_alone(client, redis_url):
    batches: list[list[tuple[str, int]]] = []
    registry = jobfleet.Registry()
    unlucky: set[str] = set()

    @registry.handler("index", batch_size=50, max_wait=0.5)
    async def index(jobs: list[jobfleet.JobContext]) -> list[Any]:
        batches.append([(j.id, j.attempt) for j in jobs])
        return [
            ValueError("search cluster rejected this document")
            if j.id in unlucky and j.attempt == 1
            else j.payload * 2
            for j in jobs
        ]

    settings = jobfleet.WorkerSettings(
        redis_url=redis_url,
        http_port=None,
        batch_size=50,
        queue=jobfleet.QueueSettings(
            name="q", concurrency=100, backoff=jobfleet.Backoff(base=0, cap=0)
        ),
    )
    ids = await client.enqueue_many([{"name": "index", "payload": i} for i in range(1000)])
    unlucky.add(ids[123])
    workers, tasks = await start_workers(1, settings, registry)
    try:

        async def done() -> bool:
            return (await client.inspect()).completed == 1000

        await until(done, what="1,000 batched jobs to complete")
        first_attempts = [b for b in batches if all(a == 1 for _, a in b)]
        assert sum(len(b) for b in first_attempts) == 1000
        assert all(len(b) == 50 for b in first_attempts)
        # The failed job came back alone: a batch of one, on its second attempt.
        assert [b for b in batches if b not in first_attempts] == [[(ids[123], 2)]]
        assert (await client.get(ids[123])).result == 246
        assert (await client.get(ids[0])).attempt == 1
    finally:
        await stop_workers(workers, tasks)


async def test_partial_batch_waits_for_max_wait(client, redis_url):
    calls: list[tuple[int, float]] = []
    registry = jobfleet.Registry()
    loop = asyncio.get_running_loop()

    @registry.handler("index", batch_size=50, max_wait=0.5)
    async def index(jobs: list[jobfleet.JobContext]) -> None:
        calls.append((len(jobs), loop.time()))

    settings = jobfleet.WorkerSettings(
        redis_url=redis_url, http_port=None, queue=jobfleet.QueueSettings(name="q", concurrency=100)
    )
    workers, tasks = await start_workers(1, settings, registry)
    try:
        await asyncio.sleep(0.2)  # the worker is idle and waiting for work
        sent = loop.time()
        ids = await client.enqueue_many([{"name": "index"}] * 7)
        for job_id in ids:
            assert (await client.wait(job_id, timeout=30)).result is None
        assert len(calls) == 1 and calls[0][0] == 7
        assert calls[0][1] - sent >= 0.5  # a short batch only after the max wait
    finally:
        await stop_workers(workers, tasks)


async def test_batch_raising_fails_every_job_of_it(client, redis_url):
    registry = jobfleet.Registry()

    @registry.handler("index", batch_size=5, max_wait=0.2)
    async def index(jobs: list[jobfleet.JobContext]) -> None:
        raise ConnectionError("bulk API down")

    settings = jobfleet.WorkerSettings(
        redis_url=redis_url,
        http_port=None,
        queue=jobfleet.QueueSettings(name="q", max_attempts=1),
    )
    workers, tasks = await start_workers(1, settings, registry)
    try:
        ids = await client.enqueue_many([{"name": "index"}] * 5)
        for job_id in ids:
            info = await client.wait(job_id, timeout=30)
            assert info.state is jobfleet.JobState.DEAD and info.error.type == "ConnectionError"
    finally:
        await stop_workers(workers, tasks)
