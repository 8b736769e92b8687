"""Partitioned queues on one redis-server: placement, the drain of every partition, the
logical view (inspect, listings, dead letters, pause), kill -9, and no partition starving."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import jobfleet
import pytest
from fleet import recorder
from jobfleet.errors import ConfigError
from jobfleet.keys import partition_name, partitions_key
from jobfleet.partitions import check_descriptor, home_of, place
from jobfleet.worker import Worker
from waiting import until

K = 4


def part(i: int) -> str:
    return partition_name("q", i)


def key_for(index: int, count: int = K, avoid: str = "") -> str:
    """A partition key that places a job in partition `index`."""
    return next(f"k{avoid}{n}" for n in range(10_000) if place(f"k{avoid}{n}", count) == index)


def worker_with_home(index: int, count: int = K) -> str:
    return next(f"w{n}" for n in range(10_000) if home_of(f"w{n}", count) == index)


@pytest.fixture
async def pclient(redis_url: str) -> AsyncIterator[jobfleet.Client]:
    """A client of queue "q" recorded as having K partitions (as a worker would at start)."""
    async with jobfleet.Client(redis_url, queue="q") as c:
        await check_descriptor(c.conn, "q", K)
        yield c


@pytest.fixture
async def workers(redis_url: str) -> AsyncIterator[Callable[..., Worker]]:
    """In-process workers of queue "q" with K partitions, stopped after the test."""
    started: list[tuple[Worker, asyncio.Task[Any]]] = []

    def start(registry: jobfleet.Registry, *, worker_id: str | None = None, **queue: Any) -> Worker:
        settings = jobfleet.WorkerSettings(
            redis_url=redis_url, http_port=None, queue={"name": "q", "partitions": K, **queue}
        )
        worker = Worker(settings, registry, worker_id=worker_id)
        started.append((worker, asyncio.create_task(worker.run())))
        return worker

    yield start
    for worker, _ in started:
        worker.stop()
    for _, task in started:
        await task


def recording(done: list[tuple[str, Any]]) -> jobfleet.Registry:
    registry = jobfleet.Registry()

    @registry.handler("rec")
    async def rec(job: jobfleet.JobContext) -> None:
        done.append((job.id, job.payload))

    return registry


async def per_partition(client: jobfleet.Client, field: str) -> list[int]:
    """One inspect field of each partition."""
    return [int((await client.engine(part(i)).inspect())[field]) for i in range(K)]


async def test_three_workers_drain_every_one_of_four_partitions(pclient, workers):
    done: list[tuple[str, Any]] = []
    ids = await pclient.enqueue_many([{"name": "rec", "payload": n} for n in range(200)])
    assert await per_partition(pclient, "waiting") == [50] * K  # round robin, no key
    for _ in range(3):
        workers(recording(done), concurrency=4)

    async def drained() -> bool:  # the outcomes recorded too: they travel with a later call
        return len(done) >= 200 and (await pclient.inspect()).completed >= 200

    await until(drained, what="200 jobs run")
    assert sorted(i for i, _ in done) == sorted(ids)  # each exactly once
    assert await per_partition(pclient, "completed") == [50] * K
    assert await per_partition(pclient, "waiting") == [0] * K
    stats = await pclient.inspect()
    assert (stats.waiting, stats.completed, stats.queue) == (0, 200, "q")


async def test_same_partition_key_keeps_order_and_one_partition(pclient, workers):
    done: list[tuple[str, Any]] = []
    key = "customer-7"
    await pclient.enqueue_many(
        [{"name": "rec", "payload": n, "partition_key": key} for n in range(30)]
    )
    waiting = await per_partition(pclient, "waiting")
    assert waiting[place(key, K)] == 30 and sum(waiting) == 30
    workers(recording(done), concurrency=1)

    async def all_run() -> bool:
        return len(done) == 30

    await until(all_run, what="30 keyed jobs")
    assert [p for _, p in done] == list(range(30))


async def test_inspect_sums_the_partitions(pclient):
    await pclient.enqueue_many([{"name": "rec", "priority": "high"}] * 6)
    await pclient.enqueue_many([{"name": "rec", "delay": 3600}] * 3)
    stats = await pclient.inspect()
    assert (stats.waiting, stats.delayed, stats.paused) == (6, 3, False)
    assert stats.waiting_by_priority["high"] == 6
    assert sum(await per_partition(pclient, "waiting")) == 6
    assert [s.queue for s in await pclient.queues()] == ["q"]  # the logical queue, once
    assert await pclient.queue_names() == ["q"]


async def test_job_lookups_find_the_job_in_its_partition(pclient):
    ids = [await pclient.enqueue("rec", n) for n in range(K)]  # one per partition
    for n, job_id in enumerate(ids):
        info = await pclient.get(job_id)
        assert (info.queue, info.payload, info.state) == ("q", n, jobfleet.JobState.WAITING)
    assert await pclient.cancel(ids[1]) == "cancelled"
    await pclient.remove(ids[2])
    with pytest.raises(jobfleet.JobNotFound):
        await pclient.get(ids[2])
    with pytest.raises(jobfleet.JobNotFound):
        await pclient.remove("no-such-job")
    chosen = await pclient.enqueue("rec", job_id="mine")
    assert await pclient.enqueue("rec", job_id="mine") == chosen  # placed by id: dedups
    assert (await pclient.inspect()).waiting == 3


async def test_listing_walks_every_partition_once(pclient):
    ids = await pclient.enqueue_many([{"name": "rec", "payload": n} for n in range(11)])
    seen: list[str] = []
    cursor = None
    while True:
        page = await pclient.jobs("waiting", limit=2, cursor=cursor)
        seen += [j.id for j in page.jobs]
        assert all(j.queue == "q" for j in page.jobs)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted(ids)
    with pytest.raises(ConfigError):
        await pclient.jobs("waiting", cursor="p9.x")


async def test_dead_letters_of_every_partition_are_listed_and_replayed(pclient, workers):
    healed = asyncio.Event()
    done: list[str] = []
    registry = jobfleet.Registry()

    @registry.handler("flaky")
    async def flaky(job: jobfleet.JobContext) -> None:
        if not healed.is_set():
            raise RuntimeError("not yet")
        done.append(job.id)

    ids = await pclient.enqueue_many([{"name": "flaky", "max_attempts": 1}] * 8)
    workers(registry)

    async def all_dead() -> bool:
        return await pclient.dlq.count() == 8

    await until(all_dead, what="8 dead letters")
    assert sorted(j.id for j in await pclient.dlq.list()) == sorted(ids)
    assert await per_partition(pclient, "dead") == [2] * K
    assert (await pclient.dlq.show(ids[3])).state is jobfleet.JobState.DEAD
    healed.set()
    assert await pclient.dlq.replay(name="flaky") == 8

    async def all_done() -> bool:
        return len(done) == 8

    await until(all_done, what="the replayed jobs to run")
    assert (await pclient.inspect()).dead == 0


async def test_pause_and_resume_reach_every_partition(pclient, workers):
    await pclient.pause()
    assert (await pclient.inspect()).paused
    assert all([(await pclient.engine(part(i)).inspect())["paused"] == "1" for i in range(K)])
    done: list[tuple[str, Any]] = []
    await pclient.enqueue_many([{"name": "rec"}] * 8)
    workers(recording(done))
    await pclient.resume()
    assert not (await pclient.inspect()).paused

    async def all_run() -> bool:
        return len(done) == 8

    await until(all_run, what="jobs after the resume")


async def test_a_pause_before_the_partitions_were_recorded_holds_for_all_of_them(
    redis_url, workers
):
    async with jobfleet.Client(redis_url, queue="q") as early:
        await early.pause()  # no descriptor yet: this reaches the plain queue alone
        assert await early.partitions() == 1  # and the client caches that
        await early.enqueue_many([{"name": "rec"}] * 6)
        done: list[tuple[str, Any]] = []
        workers(recording(done))

        async def recorded() -> bool:
            return await early.conn.get(partitions_key("q")) is not None and bool(
                await early.workers()
            )

        await until(recorded, what="the worker to record the partitions and register")
        # The worker that recorded K carried the pause over before its first claim.
        flags = [(await early.engine(part(i)).inspect())["paused"] for i in range(K)]
        assert flags == ["1"] * K
        assert not done
        await early.resume()  # the stale cache (K = 1) must not keep it from the partitions
        assert [(await early.engine(part(i)).inspect())["paused"] for i in range(K)] == ["0"] * K

        async def all_run() -> bool:
            return len(done) == 6

        await until(all_run, what="the jobs after the resume")
        assert not (await early.inspect()).paused


async def test_a_worker_whose_home_is_empty_drains_the_other_partitions(pclient, workers):
    home = 2
    done: list[tuple[str, Any]] = []
    others = [i for i in range(K) if i != home]
    jobs = [{"name": "rec", "partition_key": key_for(i)} for i in others for _ in range(5)]
    await pclient.enqueue_many(jobs)
    worker = workers(recording(done), worker_id=worker_with_home(home), concurrency=2)
    assert worker.engine.queue == part(home)

    async def all_run() -> bool:
        return len(done) == len(jobs)

    await until(all_run, what="the jobs of the partitions nobody calls home")
    assert await per_partition(pclient, "completed") == [0 if i == home else 5 for i in range(K)]


async def test_a_busy_home_does_not_starve_the_other_partitions(pclient, workers):
    home = 1
    done: list[tuple[str, Any]] = []
    await pclient.enqueue_many(
        [{"name": "rec", "payload": "home", "partition_key": key_for(home)}] * 300
    )
    other = (home + 1) % K
    await pclient.enqueue_many(
        [{"name": "rec", "payload": "other", "partition_key": key_for(other)}] * 5
    )
    workers(recording(done), worker_id=worker_with_home(home), concurrency=2)

    async def others_run() -> bool:
        return sum(p == "other" for _, p in done) == 5

    await until(others_run, what="the other partition's jobs")
    # They ran while the home partition still had work: it did not wait for home to empty.
    assert sum(p == "home" for _, p in done) < 300


async def test_jobs_written_before_any_worker_recorded_the_partitions_are_run(redis_url, workers):
    async with jobfleet.Client(redis_url, queue="q") as early:
        ids = await early.enqueue_many([{"name": "rec"}] * 5)  # no descriptor yet: plain queue
        assert await early.partitions() == 1
        done: list[tuple[str, Any]] = []
        workers(recording(done))

        async def all_run() -> bool:
            return len(done) == 5

        await until(all_run, what="the jobs of the plain queue")
        assert sorted(i for i, _ in done) == sorted(ids)
        assert (await early.inspect()).completed == 5
        async with jobfleet.Client(redis_url, queue="q") as late:
            assert await late.partitions() == K


async def test_a_worker_refuses_another_number_of_partitions(redis_url):
    async with jobfleet.Client(redis_url, queue="q") as c:
        await check_descriptor(c.conn, "q", K)
        for count in (2, 1):
            settings = jobfleet.WorkerSettings(
                redis_url=redis_url, http_port=None, queue={"name": "q", "partitions": count}
            )
            with pytest.raises(ConfigError, match=r"has 4 partitions.*docs/partitions\.md"):
                await Worker(settings, jobfleet.Registry()).run()
        assert await c.conn.get(partitions_key("q")) == "4"


async def test_kill_9_of_a_worker_holding_jobs_of_several_partitions_loses_nothing(
    pclient, redis_url, spawn_worker
):
    queue = {"concurrency": 20, "lease": 1.0, "partitions": K}
    first = spawn_worker(redis_url, env={"TEST_HANG": "1"}, queue=queue)
    ids = await pclient.enqueue_many([{"name": "slow-unless-released"}] * 20)

    async def all_started() -> bool:
        return all([await pclient.conn.llen(f"runs:{i}") for i in ids])

    await until(all_started, what="20 jobs in flight on the first worker")
    assert await per_partition(pclient, "active") == [5] * K
    first.kill()
    second = spawn_worker(redis_url, queue=queue)

    async def all_done() -> bool:
        return (await pclient.inspect()).completed == 20

    await until(all_done, what="the second worker to finish every partition's jobs")
    for job_id in ids:
        runs = await pclient.conn.lrange(f"runs:{job_id}", 0, -1)
        assert runs == [f"{first.pid}:1", f"{second.pid}:2"]
    assert (await pclient.inspect()).recovered_total == 20
    assert second.terminate() == 0


async def test_a_queue_wide_rate_limit_is_shared_out_over_the_partitions(pclient, workers):
    done: list[tuple[str, Any]] = []
    await pclient.enqueue_many([{"name": "rec"}] * 12)  # three per partition
    workers(recording(done), rate_limit={"max": 8, "period": 3600})

    async def settled() -> bool:
        return (await pclient.inspect()).held == 4

    await until(settled, what="the jobs over the limit to be held")
    assert len(done) == 8
    assert await per_partition(pclient, "completed") == [2] * K  # 8 // 4 each


async def test_obliterate_removes_every_partition_and_the_descriptor(pclient):
    await pclient.enqueue_many([{"name": "rec"}] * 8)
    assert await pclient.obliterate() > 0
    assert await pclient.queue_names() == []
    assert await pclient.conn.get(partitions_key("q")) is None
    assert await pclient.conn.keys("jf:{q*") == []


async def test_three_workers_run_one_cron_job_per_tick(pclient, workers):
    registry, ticks = recorder("cron-job")
    every_second = {"name": "tick", "cron": "* * * * * *", "job": "cron-job"}
    for _ in range(3):
        workers(registry, schedules=[every_second])

    async def three_ticks() -> bool:
        return len(ticks) >= 3

    await until(three_ticks, what="three cron ticks")
    assert len(ticks) == len(set(ticks))  # one job per tick, though three schedulers run
    cron_home = await pclient.cron_engine()
    assert cron_home.queue == part(0)

    async def completed_there() -> bool:  # the ticks ran from there (acks follow the runs)
        return int((await cron_home.inspect())["completed"]) >= 3

    await until(completed_there, what="the ticks' completions in the cron partition")
    assert [c.name for c in await pclient.cron_schedules()] == ["tick"]


async def test_cancel_and_drain_reach_a_job_and_a_worker_in_any_partition(pclient, workers):
    started = asyncio.Event()
    stopped = asyncio.Event()
    registry = jobfleet.Registry()

    @registry.handler("hang")
    async def hang(job: jobfleet.JobContext) -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            stopped.set()
            raise

    home = 0
    worker = workers(registry, worker_id=worker_with_home(home))
    job_id = await pclient.enqueue("hang", partition_key=key_for(3))  # not the worker's home
    await asyncio.wait_for(started.wait(), 60)
    assert (await pclient.get(job_id)).state is jobfleet.JobState.ACTIVE
    seen = await pclient.workers()
    assert seen[worker.id].in_flight == 1
    assert await pclient.cancel(job_id) == "cancelling"
    await asyncio.wait_for(stopped.wait(), 60)
    assert (await pclient.get(job_id)).state is jobfleet.JobState.CANCELLED
    assert await pclient.drain_workers([worker.id]) == 1

    async def drained() -> bool:
        return worker.draining

    await until(drained, what="the worker to learn of its drain")
    assert (await pclient.workers())[worker.id].draining
